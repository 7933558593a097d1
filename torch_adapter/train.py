"""Training a VQ-VAE: the loop, validation, metrics log, checkpoints, resume, DDP.

A run lives in one folder:

- ``config.json``: the :class:`TrainConfig` it was started with;
- ``metrics.jsonl``: one JSON object per logged step (training loss,
  reconstruction MSE, perplexity, codebook utilisation, dead codes,
  topographic error, wall time; validation figures every ``val_every``
  steps);
- ``checkpoint.pt``: model, optimiser, step, RNG and the log's pending
  sums, enough for :func:`train` with ``resume=True`` to go on exactly as an
  uninterrupted run would;
- ``run.lock`` while a process trains there (see :class:`RunLock`).

A damaged, locked or unwritable folder raises :class:`RunFolderError`,
whose message names the file and what to do.

The batch of step t is a pure function of (seed, t) (see
:func:`torch_adapter.data.batch_indices`), so a resumed run reads the same
batches.  Under ``torchrun`` every process takes its share of each global
batch; the model is wrapped in DistributedDataParallel and the VQ layer
all-reduces its own codebook statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import torch
import torch.distributed as dist
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from torch import nn

from sklearn_ksom import metrics
from sklearn_ksom.topology import Grid

from . import data as data_module
from .vqvae import VQVAE

QUANTIZERS = ("ksom", "ema")
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
LOCK = "run.lock"
# Options a resumed run may change: they do not alter what is computed.
RESUMABLE_CHANGES = ("steps", "device", "progress", "log_every", "val_every", "val_dense_every",
                     "val_dense_until", "checkpoint_every")
# Former names of TrainConfig fields, as older run folders' config.json
# and checkpoints hold them: the commitment weight was 'beta' (the layers
# call it 'commitment'), the grid's shape 'grid' (a layer's grid is a Grid).
RENAMED_OPTIONS = {"beta": "commitment", "grid": "grid_shape"}
# What a checkpoint holds (older ones lack 'logged_through').
CHECKPOINT_KEYS = ("config", "model", "optimizer", "rng", "step", "wall_time", "pending")


class RunFolderError(ValueError):
    """A run folder cannot be used: a file damaged, the folder locked by another run, or not writable.

    The message names the file and what to do.
    """


# What each training option may be (the bottleneck's options are the
# layer's, checked by it: KohonenVQ.check_options / EMAVQ.check_options).
_AT_LEAST_ONE = [Interval(Integral, 1, None, closed="left")]
TRAINING_CONSTRAINTS = {
    "data": [StrOptions(set(data_module.DATASETS))],
    "quantizer": [StrOptions(set(QUANTIZERS))],
    **dict.fromkeys(
        ("patch_size", "patch_stride", "dim", "hidden", "residual_hidden", "n_downsample", "steps", "batch_size",
         "log_every", "val_every", "val_images", "checkpoint_every"),
        _AT_LEAST_ONE,
    ),
    "n_residual": [Interval(Integral, 0, None, closed="left")],
    "val_dense_every": [*_AT_LEAST_ONE, None],
    "val_dense_until": [Interval(Integral, 0, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "grad_clip": [Interval(Real, 0, None, closed="neither")],
    "seed": [Integral],
    "progress": ["boolean"],
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI's options)."""

    # data
    data: str = "patches"
    data_dir: str | None = None
    validation_fraction: float = 0.2
    patch_size: int = 32
    patch_stride: int = 8
    # bottleneck
    quantizer: str = "ksom"
    grid_shape: tuple = (16, 16)
    dim: int = 64
    hexagonal: bool = False
    toroidal: bool = False
    neighbourhood: str = "hard"
    sigma: float | None = None
    sigma_end: float | None = None
    schedule: str = "inverse"
    shrink: float = 0.1
    schedule_steps: int | None = None
    decay: float = 0.99
    epsilon: float = 1e-5
    initial_count: float = 1.0
    update: str = "all"
    init: str = "normal"
    metric: str = "euclidean"  # how codes are compared; runs from before it have the default
    # model
    hidden: int = 128
    residual_hidden: int = 32
    n_residual: int = 2
    n_downsample: int = 2
    # optimisation (docs/design.md section 10)
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    commitment: float = 0.25
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    # bookkeeping
    log_every: int = 10
    val_every: int = 100
    # Optional denser validation early on (every val_dense_every steps up to
    # step val_dense_until), where the curves move fastest.
    val_dense_every: int | None = None
    val_dense_until: int = 0
    val_images: int = 2048
    checkpoint_every: int = 500
    progress: bool = True

    def __post_init__(self):
        self.grid_shape = tuple(int(n) for n in self.grid_shape)
        # The training options by their declared constraints; the bottleneck's
        # by the layer's own (one set of rules, checked before any data load).
        validate_parameter_constraints(
            TRAINING_CONSTRAINTS, {name: getattr(self, name) for name in TRAINING_CONSTRAINTS}, caller_name="TrainConfig"
        )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}.")
        layer_class, options = quantizer_options(self)
        layer_class.check_options(**options)

    @property
    def n_codes(self) -> int:
        return math.prod(self.grid_shape)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config that :meth:`to_dict` wrote, also under the former names of :data:`RENAMED_OPTIONS`.

        Options missing from ``values`` take their defaults (fields added
        since the run began); an unknown option is refused.
        """
        if not isinstance(values, dict):
            raise ValueError(f"the options must be a JSON object, got {type(values).__name__}")
        values = dict(values)
        for old, new in RENAMED_OPTIONS.items():
            if old in values:
                value = values.pop(old)
                if new in values and values[new] != value:
                    raise ValueError(f"{old!r} (the former name of {new!r}) and {new!r} differ: "
                                     f"{value!r} against {values[new]!r}")
                values[new] = value
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}")
        return cls(**values)


# ------------------------------------------------------------ building


def quantizer_options(config: TrainConfig) -> tuple[type, dict]:
    """The bottleneck layer's class and constructor arguments the config asks
    for (channels-first, for conv maps)."""
    from . import EMAVQ, KohonenVQ

    shared = dict(decay=config.decay, epsilon=config.epsilon, initial_count=config.initial_count,
                  update=config.update, init=config.init, commitment=config.commitment, channels_first=True,
                  metric=config.metric)
    if config.quantizer == "ema":
        return EMAVQ, dict(dim=config.dim, n_clusters=config.n_codes, **shared)
    return KohonenVQ, dict(
        dim=config.dim, grid_shape=config.grid_shape, hexagonal=config.hexagonal, toroidal=config.toroidal,
        neighbourhood=config.neighbourhood, sigma=config.sigma, sigma_end=config.sigma_end,
        schedule=config.schedule, shrink=config.shrink,
        schedule_steps=config.schedule_steps or config.steps, **shared,
    )


def build_quantizer(config: TrainConfig) -> nn.Module:
    """The bottleneck layer the config asks for."""
    layer_class, options = quantizer_options(config)
    return layer_class(**options)


def build_model(config: TrainConfig, in_channels: int) -> VQVAE:
    return VQVAE(build_quantizer(config), in_channels, hidden=config.hidden,
                 residual_hidden=config.residual_hidden, n_residual=config.n_residual,
                 n_downsample=config.n_downsample)


def code_grid(quantizer: nn.Module, config: TrainConfig) -> Grid:
    """Where the codes sit: the KSOM layer's grid, or the same layout for EMA-VQ.

    EMA-VQ has no grid; laying its codes out like a KSOM run's makes its
    topographic error and pictures comparable (it shows no topology).
    """
    return Grid(config.grid_shape) if config.quantizer == "ema" else quantizer.grid


def load_data(config: TrainConfig) -> data_module.ImageData:
    options = {"patch_size": config.patch_size, "stride": config.patch_stride} if config.data == "patches" else {}
    return data_module.load(config.data, data_dir=config.data_dir, validation_fraction=config.validation_fraction,
                            seed=config.seed, **options)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


# ------------------------------------------------------------ processes


@dataclass
class Processes:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this run started the process group (and ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start_processes(device_name: str) -> tuple[Processes, torch.device]:
    """Join the ``torchrun`` process group when there is one (gloo on CPU, NCCL on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return Processes(), device
    # A grey image's first convolution has a weight gradient whose singleton
    # channel stride differs from DDP's bucket; harmless, and said every step.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    owns_group = not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank, owns_group), device


# ------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate(model: VQVAE, images: data_module.ImageData, grid: Grid, device, *, max_images=None,
             batch_size=256) -> dict:
    """Validation figures: MSE on standardised pixels, perplexity, usage, topographic error.

    Runs the model in eval mode, so the codebook does not move.
    """
    was_training = model.training
    model.eval()
    validation = images.validation[:max_images] if max_images else images.validation
    squared_error, n_values, codes, latents = 0.0, 0, [], []
    for start in range(0, validation.shape[0], batch_size):
        x = images.standardise(validation[start : start + batch_size], device)
        out = model(x)
        squared_error += float(((out.reconstruction - x) ** 2).sum())
        n_values += x.numel()
        codes.append(out.quantizer.codes.reshape(-1))
        latents.append(_rows(out.latents))
    model.train(was_training)
    codes = torch.cat(codes)
    n_codes = model.quantizer.n_codes
    return {
        "val_mse": squared_error / n_values,
        "val_perplexity": metrics.perplexity(codes, n_codes),
        "val_utilisation": metrics.codebook_utilisation(codes, n_codes),
        "val_dead_codes": metrics.dead_codes(codes, n_codes),
        "val_topographic_error": metrics.topographic_error(
            torch.cat(latents), model.quantizer.codebook, grid
        ),
    }


def _rows(latents: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) latent maps -> (B*H*W, D) vectors, in float32."""
    return latents.detach().movedim(1, -1).reshape(-1, latents.shape[1]).float()


# ------------------------------------------------------------ the loop


class Run:
    """A training run in a folder: model, optimiser, position and log."""

    def __init__(self, directory, config: TrainConfig, processes: Processes, device, *, resume: bool = False):
        self.directory = Path(directory)
        self.config = config
        self.processes, self.device = processes, device
        if config.batch_size % self.processes.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} is the global batch and must divide among "
                f"{self.processes.world_size} processes."
            )
        self.images = load_data(config)
        torch.manual_seed(config.seed)
        self.model = build_model(config, self.images.channels).to(self.device)
        self.grid = code_grid(self.model.quantizer, config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        self.step = 0
        self.wall_time = 0.0
        self.pending = {"loss": 0.0, "reconstruction_mse": 0.0, "n": 0}
        # Step of the log's latest on-schedule line (None: not known, from an older checkpoint).
        self.logged_through = 0
        if resume:
            self._load_checkpoint()
        self.network = self.model
        if self.processes.distributed:
            # The layer all-reduces its own statistics: DDP syncs buffers once at the
            # start, never in the forward (it would overwrite them with rank 0's).
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids,
                                                                forward_sync_buffers=False)

    # -- checkpoints

    def _load_checkpoint(self):
        path = self.directory / CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; start the run without --resume.")
        state = read_checkpoint(path, self.device)
        if self.config.steps < state["step"]:
            raise ValueError(
                f"--steps {self.config.steps} is below the step the run in {self.directory} has reached "
                f"({state['step']}); a run cannot go back. Pass --steps above {state['step']} to train on, "
                "or start a new run."
            )
        _load_into(self.model, state["model"], path)
        _load_into(self.optimizer, state["optimizer"], path)
        try:
            torch.set_rng_state(state["rng"].cpu())  # map_location may have moved it
        except (AttributeError, TypeError, RuntimeError) as error:
            raise _damaged(path, f"its RNG state is unusable ({error})") from error
        self.step = state["step"]
        self.wall_time = state["wall_time"]
        self.pending = state["pending"]
        self.logged_through = state.get("logged_through")

    def save_checkpoint(self):
        if not self.processes.is_main:
            return
        state = {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "step": self.step,
            "wall_time": self.wall_time,
            "pending": self.pending,
            "logged_through": self.logged_through,
            "mean": self.images.mean,
            "std": self.images.std,
        }
        path = self.directory / CHECKPOINT
        temporary = self.directory / (CHECKPOINT + ".partial")
        content = io.BytesIO()
        torch.save(state, content)  # in memory first: torch.save reports a failed write as a RuntimeError
        try:
            with open(temporary, "wb") as stream:
                stream.write(content.getbuffer())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)  # never a half-written checkpoint
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise _unwritable(path, error, f"The run stopped at step {self.step}; its last checkpoint is the "
                                           "one before. Free space, then continue with --resume.") from error

    def _prepare_directory(self, resume: bool):
        if not self.processes.is_main:
            return
        log = self.directory / METRICS
        if resume:
            kept = self._kept_log_lines(log)
            with _writing(log, "Free space, then --resume again."):
                log.write_text("".join(json.dumps(line) + "\n" for line in kept))
            return
        with _writing(self.directory, "Pick a folder you may write to, with free space, as --out."):
            self.directory.mkdir(parents=True, exist_ok=True)
            # A new run in an old run's folder: the old checkpoint must not be resumed with the new log.
            (self.directory / CHECKPOINT).unlink(missing_ok=True)
            (self.directory / CONFIG).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            log.write_text("")

    def _kept_log_lines(self, log: Path) -> list[dict]:
        """The lines of the log a resumed run keeps: those up to the checkpoint's last logged step.

        Later lines go (those steps run again), and so does the off-schedule
        line that closed the interrupted call.  A last line cut short (the
        run stopped while writing it) is one of those; a damaged line
        elsewhere, or a log that lost lines the checkpoint counts on, is
        refused.
        """
        if not log.exists():
            return []  # moved away on purpose: the run goes on with a new log
        lines = read_metrics(self.directory)
        if self.logged_through is None:  # an older checkpoint: the current schedule tells
            return [line for line in lines if line["step"] <= self.step and self._on_schedule(line["step"])]
        kept = [line for line in lines if line["step"] <= self.logged_through]
        last = kept[-1]["step"] if kept else 0
        if last != self.logged_through:
            raise RunFolderError(
                f"{log} ends at step {last}, but the run had logged up to step {self.logged_through} when its "
                f"checkpoint was saved: the log lost lines (cut or overwritten). Restore it from a copy, or "
                f"move it away to continue the run with a new log from step {self.step + 1}."
            )
        return kept

    # -- one step

    def train_step(self, x: torch.Tensor):
        """One optimisation step on the batch ``x``; returns the forward's output.

        If the forward fails or the loss is not finite nothing changes: the
        layer's codebook state is put back and no optimiser step is taken.
        """
        quantizer = self.model.quantizer
        saved = {name: value.clone() for name, value in quantizer.state_dict().items()}
        self.network.train()
        try:
            out = self.network(x)
            if not torch.isfinite(out.loss):
                raise FloatingPointError(
                    f"step {self.step}: the loss is {out.loss.item()}; the step was undone. Lower --lr, "
                    "check the data for NaN/inf, or resume from the last checkpoint."
                )
        except Exception:
            quantizer.load_state_dict(saved)  # through the layer's own loading hooks
            raise
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return out

    def batch(self, step: int) -> torch.Tensor:
        indices = data_module.batch_indices(self.images.train.shape[0], self.config.batch_size, step,
                                            self.config.seed)
        indices = data_module.shard(indices, self.processes.rank, self.processes.world_size)
        return self.images.standardise(self.images.train[indices], self.device)

    def _validates(self, step: int) -> bool:
        config = self.config
        dense = (config.val_dense_every is not None and step <= config.val_dense_until
                 and step % config.val_dense_every == 0)
        return dense or step % config.val_every == 0

    def _on_schedule(self, step: int) -> bool:
        return step % self.config.log_every == 0 or self._validates(step)

    def _log_line(self, out, *, on_schedule: bool) -> dict:
        n = self.pending["n"]
        codes = out.quantizer.codes.reshape(-1)
        n_codes = self.model.quantizer.n_codes
        line = {
            "step": self.step,
            "loss": self.pending["loss"] / n,
            "reconstruction_mse": self.pending["reconstruction_mse"] / n,
            "perplexity": float(out.quantizer.perplexity),
            "utilisation": float(out.quantizer.utilisation),
            "dead_codes": metrics.dead_codes(codes, n_codes),
            "topographic_error": metrics.topographic_error(
                _rows(out.latents), self.model.quantizer.codebook, self.grid
            ),
            "wall_time": self.wall_time,
        }
        if on_schedule:  # an extra line at the end of a call leaves the averages running
            self.pending = {"loss": 0.0, "reconstruction_mse": 0.0, "n": 0}
        return line

    # -- the loop

    def run(self, *, resume: bool = False) -> list[dict]:
        """Train up to ``config.steps``; returns the lines logged by this call."""
        config = self.config
        self._prepare_directory(resume)
        logged = []
        bar = _progress_bar(self.step, config.steps, enabled=config.progress and self.processes.is_main)
        log_path = self.directory / METRICS
        with _writing(log_path, "Free space, then --resume."):
            # Unbuffered: each line is one write, so a failed write leaves nothing behind to flush later.
            log = log_path.open("ab", buffering=0) if self.processes.is_main else _Nowhere()
        with log:
            while self.step < config.steps:
                started = time.perf_counter()
                out = self.train_step(self.batch(self.step))
                self.step += 1
                self.pending["loss"] += out.loss.item()
                self.pending["reconstruction_mse"] += out.reconstruction_loss.item()
                self.pending["n"] += 1
                self.wall_time += time.perf_counter() - started
                last = self.step == config.steps
                on_schedule = self._on_schedule(self.step)
                if on_schedule or last:
                    line = self._log_line(out, on_schedule=on_schedule)
                    if self.processes.is_main and (self._validates(self.step) or last):
                        line.update(evaluate(self.model, self.images, self.grid, self.device,
                                             max_images=config.val_images))
                    if self.processes.is_main:
                        with _writing(log_path, f"The run stopped at step {self.step}. Free space, then continue "
                                                "with --resume."):
                            log.write((json.dumps(line) + "\n").encode())
                    if on_schedule:
                        self.logged_through = self.step
                    logged.append(line)
                    bar.set_postfix(loss=f"{line['loss']:.4f}", perplexity=f"{line['perplexity']:.1f}",
                                    refresh=False)
                if self.step % config.checkpoint_every == 0 or last:
                    self.save_checkpoint()
                bar.update(1)
        bar.close()
        return logged


class _Nowhere:
    """A log file for processes other than rank 0."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        pass


def _progress_bar(initial: int, total: int, enabled: bool, stream=None):
    """tqdm's bar in a terminal; elsewhere (a log file, CI) a plain line every tenth of the run."""
    stream = sys.stderr if stream is None else stream
    if enabled and not _is_terminal(stream):
        return _ProgressLines(initial, total, stream)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, file=stream)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _ProgressLines:
    """Progress for a log file: one line per tenth of the steps left, with the latest figures.

    A terminal bar redraws itself several times a second; written to a
    file, every redraw stays (a long run's log grows by hundreds of kB).
    """

    def __init__(self, initial: int, total: int, stream, parts: int = 10):
        self.step, self.total, self.stream = initial, total, stream
        self.every = max(1, -(-(total - initial) // parts))
        self.started = time.perf_counter()
        self.figures = {}

    def set_postfix(self, refresh: bool = True, **figures):
        self.figures = figures

    def update(self, n: int = 1):
        self.step += n
        if self.step % self.every == 0 or self.step == self.total:
            figures = "".join(f", {name} {value}" for name, value in self.figures.items())
            self.stream.write(f"step {self.step}/{self.total} ({100 * self.step / self.total:.0f} %){figures}, "
                              f"{time.perf_counter() - self.started:.0f} s\n")
            self.stream.flush()

    def close(self):
        pass


# ------------------------------------------------------------ the run folder


class RunLock:
    """This process's exclusive hold on a run folder, as the file ``run.lock``.

    Two runs writing one folder would interleave their logs and
    checkpoints.  The hold is an advisory lock of the operating system
    (``flock``), which ends with its process however it ends: the
    ``run.lock`` of a killed run holds no lock and the next run takes it
    over.  The file names the holder (process id, host, start time) for the
    refusal message and is removed on release.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def acquire(self):
        with _writing(self.directory, "Pick a folder you may write to, with free space, as --out."):
            self.directory.mkdir(parents=True, exist_ok=True)
            while self._fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                if not _try_lock(fd):
                    os.lseek(fd, 0, os.SEEK_SET)
                    holder = os.read(fd, 400).decode(errors="replace").strip() or "a process"
                    os.close(fd)
                    raise RunFolderError(
                        f"{self.directory} is in use by another training run ({holder}; lock file {self.path}). "
                        "Wait for it to end or stop it, or pick another --out."
                    )
                if _same_file(fd, self.path):  # else a releasing holder removed it in between: try again
                    self._fd = fd
                else:
                    os.close(fd)
            holder = f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, (holder + "\n").encode())

    def release(self):
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # before unlocking, so no one locks a file about to vanish
            os.close(self._fd)  # closing ends the lock
            self._fd = None


def _try_lock(fd) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _same_file(fd, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _writing(path, advice: str):
    """Turn a failed write under ``path`` (no space, no permission, no folder) into a RunFolderError."""
    try:
        yield
    except OSError as error:
        raise _unwritable(path, error, advice) from error


def _unwritable(path, error: OSError, advice: str) -> RunFolderError:
    return RunFolderError(f"Cannot write {path}: {error.strerror or error}. {advice}")


def _damaged(path, what: str) -> RunFolderError:
    return RunFolderError(
        f"{path} is damaged: {what}. Restore it from a copy, or start the run again in a new --out "
        "(or after deleting this folder)."
    )


def read_checkpoint(path, device="cpu") -> dict:
    """The content of a checkpoint file; a damaged one raises :class:`RunFolderError` naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except OSError as error:
        raise RunFolderError(f"Cannot read {path}: {error.strerror or error}.") from error
    except Exception as error:  # torch.load's many ways of finding a file cut short or overwritten
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise _damaged(path, f"it cannot be loaded ({first_line})") from error
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise _damaged(path, f"it is not a checkpoint of this command (no {', '.join(missing)})")
    return state


def _load_into(target, state, path):
    """``target.load_state_dict(state)``, a mismatch reported as the checkpoint's fault."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RunFolderError(
            f"{path} does not fit the model its folder's {CONFIG} describes ({first_line}): the checkpoint "
            f"belongs to another run, or {CONFIG} was edited. Put the matching pair back, or start a new run."
        ) from error


# ------------------------------------------------------------ entry points


def train(directory, config: TrainConfig | None = None, *, resume: bool = False, **changes) -> Run:
    """Train a VQ-VAE in ``directory``; with ``resume=True`` go on from its checkpoint.

    A new run takes ``config``, or a :class:`TrainConfig` of ``changes``.
    On resume the saved configuration is used; ``changes`` may alter only
    :data:`RESUMABLE_CHANGES` (e.g. more ``steps``).  The folder is locked
    (:class:`RunLock`) while the run trains.
    """
    directory = Path(directory)
    if resume:
        if config is not None:
            raise ValueError("resume=True takes the saved configuration; pass changes as keywords, not config.")
        saved = saved_config(directory)
        changes = {k: v for k, v in changes.items() if v != getattr(saved, k)}
        refused = sorted(set(changes) - set(RESUMABLE_CHANGES))
        if refused:
            raise ValueError(
                f"--resume continues {directory} with its saved options; {', '.join(refused)} cannot change "
                f"(only {', '.join(RESUMABLE_CHANGES)} can). Start a new run to change them."
            )
        config = dataclasses.replace(saved, **changes)
    elif config is None:
        config = TrainConfig(**changes)
    processes, device = start_processes(config.device)
    try:
        # Rank 0 alone writes the folder, so it alone holds the lock.
        with RunLock(directory) if processes.is_main else contextlib.nullcontext():
            run = Run(directory, config, processes, device, resume=resume)
            run.run(resume=resume)
    finally:
        if processes.owns_group:
            dist.destroy_process_group()
    return run


def saved_config(directory) -> TrainConfig:
    """The options a run folder's ``config.json`` holds (older names mapped, see :meth:`TrainConfig.from_dict`)."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"No run in {directory}: {CONFIG} is missing.")
    try:
        values = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _damaged(path, f"it is not valid JSON ({error}); {CHECKPOINT} keeps a copy of the options "
                             "under 'config'") from error
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise _damaged(path, f"its options are not valid ({error})") from error


def read_metrics(directory) -> list[dict]:
    """The metrics log of a run, one dict per logged step.

    A last line without its line end was being written when the run
    stopped (or is being written now): it is left out.  A damaged line
    elsewhere raises :class:`RunFolderError`.
    """
    path = Path(directory) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"No metrics log at {path}; train a run there first.")
    text = path.read_bytes().decode(errors="replace")
    lines = text.split("\n")
    cut = lines.pop()  # "" when the file ends with a line end
    parsed = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            parsed.append(_log_entry(line, path, number))
    if cut.strip():
        with contextlib.suppress(RunFolderError):  # cut mid-line: its step runs again on resume
            parsed.append(_log_entry(cut, path, len(lines) + 1))
    return parsed


def _log_entry(line: str, path: Path, number: int) -> dict:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        entry = error
    if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
        raise RunFolderError(
            f"{path} line {number} is damaged (not a JSON object with a step). Restore the log from a copy, "
            "delete the damaged lines, or move the log away (a resumed run then starts a new one)."
        )
    return entry


def load_run(directory, device="cpu"):
    """The model of a run's checkpoint (eval mode), its data and config."""
    path = Path(directory) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; train a run there first.")
    state = read_checkpoint(path, device)
    try:
        config = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as error:
        raise _damaged(path, f"the options it holds are not valid ({error})") from error
    images = load_data(config)
    model = build_model(config, images.channels).to(device)
    _load_into(model, state["model"], path)
    model.eval()
    return model, images, config
