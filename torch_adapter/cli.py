"""``ksom-vqvae`` (also ``python -m torch_adapter``): train, evaluate and draw VQ-VAEs.

Subcommands::

    ksom-vqvae train --out runs/ksom --quantizer ksom --grid-shape 16 16 --steps 2000
    ksom-vqvae train --out runs/ksom --resume --steps 4000   # go on where it stopped
    ksom-vqvae evaluate runs/ksom                             # validation figures, JSON
    ksom-vqvae pictures runs/ksom runs/ema --out runs/pictures
    ksom-vqvae demo                                           # what `make demo` runs

Under ``torchrun --nproc_per_node N -m torch_adapter train ...`` the data is
sharded over the N processes (gloo on CPU, NCCL on GPUs).

The command needs the ``vqvae`` extra (PyTorch, matplotlib, tqdm,
scikit-image); without it, it says so rather than fail on an import.
PyTorch is imported only once that is checked, so this module loads in a
core-only install.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sklearn_ksom.core import METRICS
from sklearn_ksom.topology import NEIGHBOURHOODS, SCHEDULES

# What the command imports, all from the extra it names.
EXTRA_MODULES = ("torch", "matplotlib", "tqdm", "skimage")
INSTALL_EXTRA = 'pip install "sklearn-ksom[vqvae]"'


def train_options() -> dict:
    """The train command's options by group: (flag, type or action, help, choices) each.

    Every field of :class:`~torch_adapter.train.TrainConfig` has one
    (``progress`` as ``--no-progress``); a flag's name is the field's.
    """
    from . import data as data_module
    from .train import QUANTIZERS

    return {
        "data": [
            ("--data", str, "data set", data_module.DATASETS),
            ("--data-dir", str, "folder of the data files (MNIST, Fashion-MNIST, CIFAR-10)", None),
            ("--validation-fraction", float, "share of the images held out for validation", None),
            ("--patch-size", int, "side of the photo patches (data=patches)", None),
            ("--patch-stride", int, "pixels between photo patches (data=patches)", None),
        ],
        "bottleneck": [
            ("--quantizer", str, "ksom (Kohonen VQ) or ema (EMA-VQ)", QUANTIZERS),
            ("--grid-shape", int, "grid shape, also --grid; K is its product (EMA-VQ: K and its pictures)", None),
            ("--dim", int, "latent depth D", None),
            ("--hexagonal", "store_true", "hexagonal 2-D grid", None),
            ("--toroidal", "store_true", "wrap the grid into a torus", None),
            ("--neighbourhood", str, "neighbourhood kernel", NEIGHBOURHOODS),
            ("--sigma", float, "start width of the neighbourhood (kernel's default if unset)", None),
            ("--sigma-end", float, "end width (exponential / linear schedules)", None),
            ("--schedule", str, "how the width shrinks", tuple(SCHEDULES)),
            ("--shrink", float, "tau of the inverse schedule s0 / (1 + tau t)", None),
            ("--schedule-steps", int, "steps of the exponential / linear schedules (default: --steps)", None),
            ("--decay", float, "EMA decay gamma", None),
            ("--epsilon", float, "Laplace smoothing epsilon", None),
            ("--initial-count", float, "initial EMA count N0 of every code", None),
            ("--update", str, "update all codes every step, or only those assigned", ("all", "active")),
            ("--init", str, "codebook initialisation", None),
            ("--metric", str, "compare vectors and codes by Euclidean distance or by cosine", METRICS),
        ],
        "model": [
            ("--hidden", int, "width h of encoder and decoder", None),
            ("--residual-hidden", int, "width r inside residual blocks", None),
            ("--n-residual", int, "residual blocks in encoder and decoder", None),
            ("--n-downsample", int, "stride-2 stages (latents 2**n times smaller)", None),
        ],
        "optimisation": [
            ("--steps", int, "training steps", None),
            ("--batch-size", int, "global batch size (split over torchrun processes)", None),
            ("--lr", float, "AdamW learning rate", None),
            ("--commitment", float, "commitment weight beta of the loss (formerly --beta)", None),
            ("--grad-clip", float, "gradient-norm clipping", None),
            ("--seed", int, "seed of initialisation, split and batch order", None),
            ("--device", str, "auto, cpu, cuda or cuda:N", None),
        ],
        "bookkeeping": [
            ("--log-every", int, "steps between lines of metrics.jsonl", None),
            ("--val-every", int, "steps between validation figures", None),
            ("--val-dense-every", int, "steps between validations early on, up to --val-dense-until", None),
            ("--val-dense-until", int, "last step of the dense early validation", None),
            ("--val-images", int, "validation images evaluated (at most)", None),
            ("--checkpoint-every", int, "steps between checkpoints", None),
        ],
    }


# Former flags: accepted, with a note on stderr.
DEPRECATED_FLAGS = {"--beta": "--commitment"}


class _Deprecated(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        sys.stderr.write(f"ksom-vqvae: note: {option_string} is deprecated; use {DEPRECATED_FLAGS[option_string]}.\n")
        setattr(namespace, self.dest, values)


def _add_train_options(parser: argparse.ArgumentParser):
    from .train import TrainConfig

    defaults = TrainConfig()
    groups = train_options()
    # Defaults are SUPPRESSed so the parsed namespace holds only the options
    # given: --resume can then tell which ones the user asked to change.
    for group_name, options in groups.items():
        group = parser.add_argument_group(group_name)
        for flag, kind, text, choices in options:
            name = flag[2:].replace("-", "_")
            default = getattr(defaults, name)
            text = f"{text} (default: {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
            if kind == "store_true":
                group.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
            else:
                flags = (flag, "--grid") if name == "grid_shape" else (flag,)
                group.add_argument(*flags, type=kind, choices=choices, default=argparse.SUPPRESS, help=text,
                                   nargs="+" if name == "grid_shape" else None,
                                   metavar=None if choices else name.upper())
    kinds = {flag: kind for options in groups.values() for flag, kind, *_ in options}
    for old, new in DEPRECATED_FLAGS.items():
        parser.add_argument(old, dest=new[2:].replace("-", "_"), type=kinds[new], action=_Deprecated,
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                        help="no progress bar (in a terminal; elsewhere a line every tenth of the run)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksom-vqvae",
        description="Train VQ-VAEs with a Kohonen (KSOM) or EMA-VQ bottleneck, evaluate them, draw them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a VQ-VAE (or --resume one)",
                                description="Train a VQ-VAE; writes config.json, metrics.jsonl and checkpoint.pt.")
    train.add_argument("--out", required=True, type=Path, help="run folder")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (only --steps and bookkeeping may change)")
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads of torch (default: torch's choice, usually one per core)")
    _add_train_options(train)

    evaluate = commands.add_parser("evaluate", help="validation figures of a checkpoint, as JSON")
    evaluate.add_argument("run", type=Path, help="run folder")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    evaluate.add_argument("--val-images", type=int, default=None, help="validation images (default: all)")

    pictures = commands.add_parser("pictures", help="curves, reconstructions, codebook and index-shift PNGs")
    pictures.add_argument("runs", nargs="+", type=Path, help="run folders")
    pictures.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    pictures.add_argument("--device", default="cpu")
    pictures.add_argument("--shift-axis", type=int, default=0, help="grid axis of the index shift (default: 0)")

    demo = commands.add_parser("demo", help="train KSOM and EMA-VQ on the bundled patches and write a report")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder (default: runs/demo)")
    demo.add_argument("--steps", type=int, default=None, help="training steps of each model")
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    demo.add_argument("--threads", type=int, default=1,
                      help="CPU threads of torch (default: 1; this small model gains little from more, and "
                           "several threads slow down badly when other jobs share the cores)")
    return parser


def main(argv=None) -> int:
    _require_extra()
    import torch

    parser = build_parser()
    args = parser.parse_args(argv)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "pictures":
            return _pictures(args)
        return _demo(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        parser.exit(2, f"ksom-vqvae {args.command}: error: {error}\n")


def _require_extra():
    """Exit with status 2 and the install command when a module of the vqvae extra is missing."""
    for name in EXTRA_MODULES:
        try:
            __import__(name)
        except ModuleNotFoundError as error:
            if (error.name or name).split(".")[0] != name:
                raise  # a broken install of the module itself, not a missing one
            sys.stderr.write(f"ksom-vqvae: error: {name} is not installed, and the command needs it. "
                             f"Install the vqvae extra: {INSTALL_EXTRA}\n")
            raise SystemExit(2) from error


def _train(args) -> int:
    from .train import TrainConfig, train

    options = {k: v for k, v in vars(args).items() if k not in ("command", "out", "resume", "threads")}
    if "grid_shape" in options:
        options["grid_shape"] = tuple(options["grid_shape"])
    if args.resume:
        run = train(args.out, resume=True, **options)
    else:
        if (args.out / "checkpoint.pt").exists():
            raise ValueError(f"{args.out} already holds a run; add --resume to continue it, or pick another --out.")
        run = train(args.out, TrainConfig(**options))
    if run.processes.is_main:
        print(f"run in {args.out} at step {run.step}: metrics {args.out / 'metrics.jsonl'}, "
              f"checkpoint {args.out / 'checkpoint.pt'}")
    return 0


def _evaluate(args) -> int:
    from .train import code_grid, evaluate, load_run, resolve_device

    device = resolve_device(args.device)
    model, images, config = load_run(args.run, device)
    figures = evaluate(model, images, code_grid(model.quantizer, config), device, max_images=args.val_images)
    # JSON has no NaN or infinity: a diverged model's figures are null (and said so).
    diverged = sorted(name for name, value in figures.items() if not math.isfinite(value))
    if diverged:
        sys.stderr.write(f"ksom-vqvae evaluate: {', '.join(diverged)} not finite (null in the JSON): the model "
                         "has diverged. Train it again with a lower --lr, or check the data for NaN or infinity.\n")
    figures = {name: None if name in diverged else value for name, value in figures.items()}
    print(json.dumps({"run": str(args.run), "step": int(model.quantizer.step), **figures}, indent=2,
                     allow_nan=False))
    return 0


def _pictures(args) -> int:
    from .demo import draw_pictures

    for path in draw_pictures(args.runs, args.out, device=args.device, shift_axis=args.shift_axis):
        print(path)
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    changes = {"progress": args.progress}
    if args.steps is not None:
        changes["steps"] = args.steps
    report = run_demo(args.out, **changes)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
