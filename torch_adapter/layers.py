"""VQ-VAE bottleneck layers on the shared core: :class:`KohonenVQ` and :class:`EMAVQ`.

The layers own torch state (codebook, EMA counts and sums, step counter, all
buffers) and call :func:`sklearn_ksom.core.ema_step` for the update.  Their
settings are the estimators' public settings objects, validated once:
:class:`sklearn_ksom.topology.NeighbourhoodSchedule` (grid, kernel, widths,
schedule: the P(t) of every step) and :class:`sklearn_ksom.core.EMAConstants`.
The parameters carry the estimators' names, so a layer converts to a fitted
estimator and back.  :class:`EMAVQ` is :class:`KohonenVQ` without a
neighbourhood (P = I).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from array_api_compat import array_namespace
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from sklearn_ksom.core import (
    EMA_CONSTRAINTS,
    METRIC_CONSTRAINT,
    EMAConstants,
    EMAState,
    assign,
    ema_step,
    initial_state,
    normalised,
    unit_codes,
)
from sklearn_ksom.estimators import EMAQuantizer, KohonenQuantizer
from sklearn_ksom.metrics import usage, usage_perplexity, usage_utilisation
from sklearn_ksom.topology import Grid, NeighbourhoodSchedule

__all__ = ["EMAVQ", "KohonenVQ", "VQOutput"]


class VQOutput(NamedTuple):
    """What a VQ layer returns for a batch."""

    quantized: torch.Tensor  # nearest codes, straight-through; the input's shape and dtype
    codes: torch.Tensor  # int64 code indices, the input's shape without the D axis
    loss: torch.Tensor  # commitment loss beta * MSE(z, sg[q]), float32 scalar
    perplexity: torch.Tensor  # exp(entropy) of the batch's code usage, scalar
    utilisation: torch.Tensor  # share of the codes the batch uses, scalar


_LAYER_CONSTRAINTS = {
    "dim": [Interval(Integral, 1, None, closed="left")],
    "init": [StrOptions({"normal"}), "array-like"],
    "commitment": [Interval(Real, 0, None, closed="left")],
    "channels_first": ["boolean"],
    "metric": METRIC_CONSTRAINT,
}


def _read_step(layer, incompatible_keys):
    layer._steps = int(layer.step)


def _host_array(init):
    """An ``init`` array (NumPy, torch, list) as NumPy, for validation and copying."""
    return init.detach().cpu().numpy() if isinstance(init, torch.Tensor) else np.asarray(init)


def _validated_settings(
    caller, dim, grid, schedule_settings, ema_settings, *, init, commitment, channels_first, metric
):
    """A layer's options checked against their declared constraints: the
    layer's schedule and EMA constants, or a ValueError naming the option."""
    validate_parameter_constraints(
        {**_LAYER_CONSTRAINTS, **EMA_CONSTRAINTS},
        {"dim": dim, "init": init, "commitment": commitment, "channels_first": channels_first, "metric": metric,
         **ema_settings},
        caller_name=caller,
    )
    schedule = NeighbourhoodSchedule.from_parameters(grid, caller=caller, **schedule_settings)
    return schedule, EMAConstants(**ema_settings)


class _EMAQuantizerLayer(torch.nn.Module):
    """Buffers, forward and conversions shared by both layers."""

    estimator_class: type  # the scikit-learn estimator with the same settings

    def __init__(
        self, dim, grid: Grid, schedule_settings: dict, ema_settings: dict, *, init, commitment, channels_first, metric
    ):
        super().__init__()
        self.neighbourhood_schedule, self.ema = _validated_settings(
            type(self).__name__, dim, grid, schedule_settings, ema_settings,
            init=init, commitment=commitment, channels_first=channels_first, metric=metric,
        )  # fmt: skip
        self.dim, self.commitment, self.channels_first = int(dim), float(commitment), bool(channels_first)
        self.metric = metric
        self.grid = self.neighbourhood_schedule.grid
        shape = (self.grid.n_codes, self.dim)
        # W ~ N(0, 1) is the reference code's start (docs/design.md section 7).
        is_normal = isinstance(init, str)
        codebook = torch.randn(shape) if is_normal else torch.as_tensor(_host_array(init), dtype=torch.float32)
        if tuple(codebook.shape) != shape:
            raise ValueError(f"init array has shape {tuple(codebook.shape)}; expected (n_codes, dim) = {shape}.")
        if not bool(torch.isfinite(codebook).all()):
            raise ValueError("init array contains NaN or infinity; pass a finite starting codebook.")
        # Cosine codes live on the unit sphere (docs/design.md section 13).
        codebook = unit_codes(codebook, metric, "init")
        state = initial_state(codebook.clone(), self.ema.initial_count)
        for field, value in zip(EMAState._fields, state):
            self.register_buffer(field, value)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        # The host keeps its own copy of the step: P(t) is built on the host,
        # and reading the buffer would wait for the device every step.
        self._steps = 0
        self.register_load_state_dict_post_hook(_read_step)

    @property
    def n_codes(self) -> int:
        return self.grid.n_codes

    def extra_repr(self):
        return (
            f"dim={self.dim}, n_codes={self.n_codes}, commitment={self.commitment}, metric={self.metric!r}, "
            f"neighbourhood_schedule={self.neighbourhood_schedule!r}, ema={self.ema!r}"
        )

    def settings(self) -> dict:
        """The layer's parameters that the estimator of the same name takes."""
        raise NotImplementedError

    @classmethod
    def check_options(cls, *args, **kwargs) -> tuple[NeighbourhoodSchedule, EMAConstants]:
        """Check the constructor's arguments without building the layer.

        The same checks as the constructor, from the same declared
        constraints, with no tensor made: a ValueError naming the bad
        option, or the neighbourhood schedule and EMA constants the layer
        would hold.  The training command checks its options with it
        before loading any data.
        """
        bound = inspect.signature(cls).bind(*args, **kwargs)
        bound.apply_defaults()
        parts = cls._parts(**bound.arguments)
        return _validated_settings(
            cls.__name__, parts.pop("dim"), parts.pop("grid"), parts.pop("schedule_settings"),
            parts.pop("ema_settings"), **parts,
        )  # fmt: skip

    # ------------------------------------------------------------ forward

    def forward(self, z: torch.Tensor) -> VQOutput:
        """Quantise ``z`` (..., D), or (B, D, ...) with ``channels_first``.

        In training mode the codebook takes one EMA (KSOM) step on the batch,
        without gradient; the codes and the output use the codebook from
        before the step.  Eval mode never changes a buffer.

        With ``metric='cosine'`` the vectors are scaled to unit length first
        (differentiably), so the output is the unit code and the commitment
        loss compares unit vectors (docs/design.md section 13).
        """
        vectors = self._flat_vectors(z)
        # Cosine: unit vectors (a zero vector stays zero and takes code 0).
        vectors = normalised(vectors, self.metric)
        # Distances and statistics in the codebook's float32, whatever autocast says.
        with torch.autocast(z.device.type, enabled=False):
            x = vectors.detach().to(self.codebook.dtype)
            if self.training:
                codes, counts, quantized = self._update(x)
            else:
                codes = assign(x, self.codebook, metric=self.metric).first
                counts = usage(codes, self.n_codes, dtype=x.dtype)
                quantized = F.embedding(codes, self.codebook)
            loss = self.commitment * F.mse_loss(vectors.to(x.dtype), quantized)
        # Straight-through: the value of q, the gradient of z (docs/design.md section 9).
        quantized = vectors + (quantized.to(vectors.dtype) - vectors).detach()
        leading = (z.shape[0], *z.shape[2:]) if self.channels_first else z.shape[:-1]
        return VQOutput(
            self._unflatten(quantized.reshape(*leading, self.dim)),
            codes.reshape(leading),
            loss,
            usage_perplexity(counts),
            usage_utilisation(counts),
        )

    @torch.no_grad()
    def _update(self, x):
        """One EMA / KSOM step on the buffers.

        Returns the batch's codes, its (all-reduced) counts and its
        quantised vectors from the codebook before the step.  A step whose
        distances or statistics are not finite (NaN or inf in the input, or
        values whose squares overflow) raises and changes no buffer.
        """
        distributed = dist.is_available() and dist.is_initialized()

        def reduce(counts, sums):
            # Data parallel: every process gets the summed statistics and
            # makes the same update.
            if distributed:
                packed = torch.cat([counts[:, None], sums], dim=1)
                dist.all_reduce(packed)
                counts, sums = packed[:, 0], packed[:, 1:]
            return counts, sums

        ema = self.ema
        step = ema_step(
            EMAState(self.codebook, self.counts, self.sums),
            x,
            self.neighbourhood_schedule.at(self._steps, xp=array_namespace(x), dtype=x.dtype, device=x.device),
            decay=ema.decay_over(self.neighbourhood_schedule.length),
            epsilon=ema.epsilon,
            update_all=ema.update_all,
            reduce=reduce,
            metric=self.metric,
        )
        finite = torch.isfinite(step.assignment.squared_distance).all()
        for value in step.state:
            finite = finite & torch.isfinite(value).all()
        if distributed:
            # One process's overflow refuses the step on every process.
            flag = finite.to(torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag.bool()
        if not bool(finite):  # the step's one host sync
            raise ValueError(
                f"{type(self).__name__} got NaN or inf in its training step (input values that are not "
                "finite, or too large to square, on this or another process); the codebook was not "
                "updated. Check the encoder output."
            )
        quantized = F.embedding(step.assignment.first, self.codebook)
        for buffer, value in zip((self.codebook, self.counts, self.sums), step.state):
            buffer.copy_(value)
        self.step += 1
        self._steps += 1
        return step.assignment.first, step.counts, quantized

    def _flat_vectors(self, z):
        """Validate ``z`` and return its vectors as an (N, D) tensor."""
        name = type(self).__name__
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"{name} expects a floating-point tensor, got {getattr(z, 'dtype', type(z))}.")
        axis = 1 if self.channels_first else -1
        if z.ndim < (2 if self.channels_first else 1) or z.shape[axis] != self.dim:
            where = "channel dimension (axis 1, channels_first=True)" if self.channels_first else "last dimension"
            raise ValueError(f"{name}(dim={self.dim}) expects the {where} to be {self.dim}; got input of shape {tuple(z.shape)}.")
        if z.numel() == 0:
            raise ValueError(f"{name} got an empty batch (input shape {tuple(z.shape)}); pass at least one vector.")
        if z.device != self.codebook.device:
            raise ValueError(f"{name}: input on {z.device} but the codebook on {self.codebook.device}; move one with .to().")
        if self.codebook.dtype not in (torch.float32, torch.float64):
            raise TypeError(
                f"{name}'s buffers are {self.codebook.dtype}; the EMA statistics need float32. "
                "Keep the layer in float32 and use torch.autocast for mixed precision."
            )
        return (z.movedim(1, -1) if self.channels_first else z).reshape(-1, self.dim)

    def _unflatten(self, vectors):
        return vectors.movedim(-1, 1) if self.channels_first else vectors

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """The code vectors of ``codes`` (any shape): (..., D), or (B, D, ...) with channels_first."""
        codes = torch.as_tensor(codes, device=self.codebook.device)
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise TypeError(f"codes must be integer indices, got {codes.dtype}.")
        if codes.numel() and bool(((codes < 0) | (codes >= self.n_codes)).any()):
            raise ValueError(f"codes must lie in [0, {self.n_codes}); got values outside.")
        return self._unflatten(F.embedding(codes, self.codebook))

    # -------------------------------------------------------- conversions

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # All or nothing: a buffer of the wrong shape refuses the whole
        # layer's state, before any buffer (the step included) is replaced.
        mismatched = [
            f"size mismatch for {prefix}{name}: copying a tensor of shape {tuple(state_dict[prefix + name].shape)}, "
            f"the shape in {type(self).__name__} is {tuple(buffer.shape)}; nothing of this layer was loaded."
            for name, buffer in self.named_buffers(recurse=False)
            if prefix + name in state_dict and tuple(state_dict[prefix + name].shape) != tuple(buffer.shape)
        ]
        codebook = state_dict.get(prefix + "codebook")
        if not mismatched and self.metric == "cosine" and codebook is not None:
            lengths = torch.linalg.vector_norm(codebook.detach().to(torch.float64), dim=-1)
            if not bool(torch.isfinite(lengths).all()) or float((lengths - 1).abs().max()) > 1e-4:
                mismatched.append(
                    f"{prefix}codebook holds codes that are not of unit length, but {type(self).__name__} has "
                    f"metric='cosine' (a state saved with metric='euclidean'?); build the layer with the "
                    f"metric it was trained with. Nothing of this layer was loaded."
                )
        if mismatched:
            error_msgs.extend(mismatched)
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def to_estimator(self):
        """This layer as a fitted :class:`KohonenQuantizer` / :class:`EMAQuantizer` (NumPy).

        The estimator holds copies of the buffers: training either one
        later leaves the other as it is.
        """
        return self.estimator_class.from_state(
            *(buffer.detach().cpu().numpy().copy() for buffer in (self.codebook, self.counts, self.sums)),
            n_steps=self._steps,
            **self.settings(),
        )

    @classmethod
    def from_estimator(cls, estimator, *, commitment=0.25, channels_first=False):
        """A layer with the settings and the fitted state of ``estimator``.

        The layer continues the estimator's neighbourhood schedule, over the
        same length.
        """
        if not isinstance(estimator, cls.estimator_class):
            raise TypeError(f"{cls.__name__}.from_estimator needs a {cls.estimator_class.__name__}, got {type(estimator).__name__}.")
        check_is_fitted(estimator)
        if estimator.counts_.ndim != 1:
            raise ValueError(
                f"{type(estimator).__name__}.counts_ are per code and feature {tuple(estimator.counts_.shape)} "
                f"(it trained on missing values), but a layer keeps one count per code: start the layer "
                f"from the codebook alone, init=estimator.cluster_centers_."
            )
        params = estimator.get_params()
        shared = (set(inspect.signature(cls).parameters) & set(params)) - {"init"}
        settings = {name: params[name] for name in shared}
        if "schedule_steps" in settings:
            settings["schedule_steps"] = estimator.neighbourhood_schedule_.n_steps
        settings["decay"] = estimator.decay_  # 'auto' as the estimator's stream resolves it
        layer = cls(
            estimator.n_features_in_,
            **settings,
            init=np.asarray(estimator.cluster_centers_),
            commitment=commitment,
            channels_first=channels_first,
        )
        layer.counts.copy_(torch.as_tensor(np.asarray(estimator.counts_)))
        layer.sums.copy_(torch.as_tensor(np.asarray(estimator.sums_)))
        layer.step.fill_(estimator.n_steps_)
        layer._steps = int(estimator.n_steps_)
        return layer


class KohonenVQ(_EMAQuantizerLayer):
    """Kohonen (KSOM) vector-quantisation layer for a VQ-VAE bottleneck.

    The codes sit on a grid; each training step spreads every assignment
    over the winner's grid neighbours with weights P(t) and applies the EMA
    codebook update (Irie, Csordas & Schmidhuber 2023; docs/design.md section 2).
    The defaults are the paper's: hard neighbourhood 1[d < 1.5] / (1 + tau t)
    with tau = 0.1, W ~ N(0, 1), M = W, N_k = 1, all codes updated.

    Parameters
    ----------
    dim : int
        Size D of the vectors (last axis, or axis 1 with ``channels_first``).
    grid_shape : tuple of int, default=(32, 16)
        Codes along each grid axis; K = product.
    hexagonal, toroidal, neighbourhood, sigma, sigma_end, schedule, shrink, schedule_steps
        The grid and the neighbourhood with its width schedule, as in
        :class:`sklearn_ksom.KohonenQuantizer` (defaults here: ``'hard'``,
        ``'inverse'``, ``shrink=0.1``).
    decay, epsilon, initial_count, update
        The EMA update, as in the estimators (0.99, 1e-5, 1.0, ``'all'``).
    init : 'normal' or array of shape (K, D), default='normal'
        Starting codebook: W ~ N(0, 1) (the global torch RNG), or given.
    commitment : float, default=0.25
        Weight beta of the commitment loss beta * MSE(z, sg[q]).
    channels_first : bool, default=False
        Input and output as (B, D, ...) feature maps instead of (..., D).
    metric : {'euclidean', 'cosine'}, default='euclidean'
        How vectors and codes are compared.  'cosine' scales both to unit
        length (the codebook stays on the unit sphere): the output is then
        the unit code, the decoder receives vectors of length 1, and the
        gradient reaches ``z`` through its normalisation (docs/design.md
        section 13).  A zero vector has cosine 0 with every code: it takes
        code 0, at distance 1.

    Notes
    -----
    - Training mode updates the buffers ``codebook``, ``counts``, ``sums``
      and ``step`` under no_grad; the output uses the codebook from before
      the update.  Eval mode changes nothing.  The 'exponential' and
      'linear' schedules run over ``schedule_steps`` updates (1000 if
      unset), as in the estimators' ``partial_fit``.
    - Under ``torch.autocast`` the distances and statistics stay in the
      buffers' float32; ``quantized`` comes back in the input's dtype.
    - When ``torch.distributed`` is initialised, every update sums the
      batch counts and sums over all processes first (one all-reduce), so
      processes that start from the same codebook (DistributedDataParallel
      broadcasts it) keep the same codebook.
    - A training step reads one flag back from the device: whether the
      batch statistics are finite; a NaN or inf batch, or one whose squared
      distances overflow, raises and changes nothing.  Eval mode reads one
      flag too: whether the distances are finite.

    Examples
    --------
    >>> import torch
    >>> from torch_adapter import KohonenVQ
    >>> _ = torch.manual_seed(0)
    >>> layer = KohonenVQ(dim=4, grid_shape=(4, 4))
    >>> out = layer(torch.randn(2, 10, 4))
    >>> out.quantized.shape, out.codes.shape, int(layer.step)
    (torch.Size([2, 10, 4]), torch.Size([2, 10]), 1)
    >>> layer.to_estimator().predict(torch.randn(3, 4).numpy()).shape
    (3,)
    """

    estimator_class = KohonenQuantizer

    def __init__(
        self,
        dim,
        grid_shape=(32, 16),
        *,
        hexagonal=False,
        toroidal=False,
        neighbourhood="hard",
        sigma=None,
        sigma_end=None,
        schedule="inverse",
        shrink=0.1,
        schedule_steps=None,
        decay=0.99,
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
        init="normal",
        commitment=0.25,
        channels_first=False,
        metric="euclidean",
    ):
        super().__init__(**self._parts(
            dim=dim, grid_shape=grid_shape, hexagonal=hexagonal, toroidal=toroidal, neighbourhood=neighbourhood,
            sigma=sigma, sigma_end=sigma_end, schedule=schedule, shrink=shrink, schedule_steps=schedule_steps,
            decay=decay, epsilon=epsilon, initial_count=initial_count, update=update, init=init,
            commitment=commitment, channels_first=channels_first, metric=metric,
        ))  # fmt: skip

    @staticmethod
    def _parts(*, dim, grid_shape, hexagonal, toroidal, decay, epsilon, initial_count, update, init, commitment,
               channels_first, metric, **schedule_settings):
        return dict(
            dim=dim, grid=Grid(tuple(np.atleast_1d(grid_shape)), hexagonal, toroidal),
            schedule_settings=schedule_settings,
            ema_settings=dict(decay=decay, epsilon=epsilon, initial_count=initial_count, update=update),
            init=init, commitment=commitment, channels_first=channels_first, metric=metric,
        )  # fmt: skip

    def settings(self):
        schedule = self.neighbourhood_schedule
        return dict(
            grid_shape=schedule.grid.shape, hexagonal=schedule.grid.hexagonal, toroidal=schedule.grid.toroidal,
            neighbourhood=schedule.kernel, sigma=schedule.sigma, sigma_end=schedule.sigma_end,
            schedule=schedule.schedule, shrink=schedule.shrink, schedule_steps=schedule.n_steps, metric=self.metric, **asdict(self.ema),
        )  # fmt: skip


class EMAVQ(_EMAQuantizerLayer):
    """EMA vector-quantisation layer (VQ-VAE, van den Oord et al. 2017).

    :class:`KohonenVQ` without a neighbourhood: each training step moves the
    codes to exponential moving averages of their assigned vectors, with
    Laplace-smoothed counts (docs/design.md section 2).  Parameters as in
    :class:`KohonenVQ`; ``n_clusters`` is K and the grid is 1-D.

    Examples
    --------
    >>> import torch
    >>> from torch_adapter import EMAVQ
    >>> layer = EMAVQ(dim=8, n_clusters=32, channels_first=True)
    >>> out = layer(torch.randn(2, 8, 5, 5))
    >>> out.quantized.shape, out.codes.shape
    (torch.Size([2, 8, 5, 5]), torch.Size([2, 5, 5]))
    """

    estimator_class = EMAQuantizer

    def __init__(
        self,
        dim,
        n_clusters=512,
        *,
        decay=0.99,
        epsilon=1e-5,
        initial_count=1.0,
        update="all",
        init="normal",
        commitment=0.25,
        channels_first=False,
        metric="euclidean",
    ):
        super().__init__(**self._parts(
            dim=dim, n_clusters=n_clusters, decay=decay, epsilon=epsilon, initial_count=initial_count,
            update=update, init=init, commitment=commitment, channels_first=channels_first, metric=metric,
        ))  # fmt: skip

    @classmethod
    def _parts(cls, *, dim, n_clusters, init, commitment, channels_first, metric, **ema_settings):
        validate_parameter_constraints(
            {"n_clusters": [Interval(Integral, 1, None, closed="left")]}, {"n_clusters": n_clusters},
            caller_name=cls.__name__,
        )  # fmt: skip
        return dict(
            dim=dim, grid=Grid((n_clusters,)), schedule_settings=dict(neighbourhood="none"), ema_settings=ema_settings,
            init=init, commitment=commitment, channels_first=channels_first, metric=metric,
        )  # fmt: skip

    def settings(self):
        return dict(n_clusters=self.n_codes, metric=self.metric, **asdict(self.ema))
