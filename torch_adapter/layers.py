"""VQ-VAE bottleneck layers on the shared core: :class:`KohonenVQ` and :class:`EMAVQ`.

The layers own torch state (codebook, EMA counts and sums, step counter, all
buffers) and call :func:`sklearn_ksom.core.ema_step` for the update; the
settings (grid, neighbourhood schedule, EMA constants) live in an unfitted
scikit-learn estimator of the same name-for-name parameters, so validation,
the width schedule P(t) and the export to a fitted estimator are the
estimators' own.  :class:`EMAVQ` is :class:`KohonenVQ` without a
neighbourhood (P = I).
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from sklearn_ksom._array_api import count_labels, namespace, to_numpy
from sklearn_ksom.core import EMAState, assign, ema_step, initial_state
from sklearn_ksom.estimators import DEFAULT_STREAM_STEPS, EMAQuantizer, KohonenQuantizer
from sklearn_ksom.metrics import usage_perplexity, usage_utilisation

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
}


def _read_step(layer, incompatible_keys):
    layer._steps = int(layer.step)


class _EMAQuantizerLayer(torch.nn.Module):
    """Buffers, forward and conversions shared by both layers."""

    estimator_class: type  # the scikit-learn estimator with the same settings

    def __init__(self, dim, settings: dict, *, init, commitment, channels_first):
        super().__init__()
        validate_parameter_constraints(
            {**self.estimator_class._parameter_constraints, **_LAYER_CONSTRAINTS},
            {**settings, "dim": dim, "init": init, "commitment": commitment, "channels_first": channels_first},
            caller_name=type(self).__name__,
        )
        self.dim, self.commitment, self.channels_first = int(dim), float(commitment), bool(channels_first)
        # W ~ N(0, 1) is the reference code's start; its estimator twin is
        # 'random' (N(mean, std) of the data: the same on standardised data).
        is_normal = isinstance(init, str)
        self._estimator = self.estimator_class(**settings, algorithm="ema", init="random" if is_normal else to_numpy(init))
        self._estimator._check_params(None)  # builds the grid (and checks it)
        self.grid = self._estimator._grid()
        shape = (self.grid.n_codes, self.dim)
        codebook = torch.randn(shape) if is_normal else torch.as_tensor(np.asarray(to_numpy(init)), dtype=torch.float32)
        if tuple(codebook.shape) != shape:
            raise ValueError(f"init array has shape {tuple(codebook.shape)}; expected (n_codes, dim) = {shape}.")
        if not bool(torch.isfinite(codebook).all()):
            raise ValueError("init array contains NaN or infinity; pass a finite starting codebook.")
        state = initial_state(codebook.clone(), float(self._estimator.initial_count))
        for name, value in zip(EMAState._fields, state):
            self.register_buffer(name, value)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        # The host keeps its own copy of the step: P(t) is built on the host,
        # and reading the buffer would wait for the device every step.
        self._steps = 0
        self.register_load_state_dict_post_hook(_read_step)

    @property
    def n_codes(self) -> int:
        return self.grid.n_codes

    def extra_repr(self):
        return f"dim={self.dim}, n_codes={self.n_codes}, commitment={self.commitment}, settings={self._estimator!r}"

    # ------------------------------------------------------------ forward

    def forward(self, z: torch.Tensor) -> VQOutput:
        """Quantise ``z`` (..., D), or (B, D, ...) with ``channels_first``.

        In training mode the codebook takes one EMA (KSOM) step on the batch,
        without gradient; the codes and the output use the codebook from
        before the step.  Eval mode never changes a buffer.
        """
        vectors = self._flat_vectors(z)
        # Distances and statistics in the codebook's float32, whatever autocast says.
        with torch.autocast(z.device.type, enabled=False):
            x = vectors.detach().to(self.codebook.dtype)
            if self.training:
                codes, counts, quantized = self._update(x)
            else:
                codes = assign(x, self.codebook).first
                counts = count_labels(codes, self.n_codes, namespace(x), dtype=x.dtype)
                quantized = F.embedding(codes, self.codebook)
            loss = self.commitment * F.mse_loss(vectors.to(x.dtype), quantized)
        # Straight-through: the value of q, the gradient of z (SPEC section 2).
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
        quantised vectors from the codebook before the step.
        """
        batch_counts = []

        def reduce(counts, sums):
            # Data parallel: every process gets the summed statistics and
            # makes the same update.
            if dist.is_available() and dist.is_initialized():
                packed = torch.cat([counts[:, None], sums], dim=1)
                dist.all_reduce(packed)
                counts, sums = packed[:, 0], packed[:, 1:]
            if not bool(torch.isfinite(sums).all()):  # the step's one host sync
                raise ValueError(
                    f"{type(self).__name__} got NaN or inf in its training input, or input so far from "
                    "the codes that squared distances overflow (on this or another process); the "
                    "codebook was not updated. Check the encoder output."
                )
            batch_counts.append(counts)
            return counts, sums

        settings = self._estimator
        neighbourhood = settings._neighbourhood_at(
            self._steps, settings._schedule_length(DEFAULT_STREAM_STEPS), namespace(x), x.dtype, x.device
        )
        state, assignment = ema_step(
            EMAState(self.codebook, self.counts, self.sums),
            x,
            neighbourhood,
            decay=settings.decay,
            epsilon=settings.epsilon,
            update_all=settings.update == "all",
            reduce=reduce,
        )
        quantized = F.embedding(assignment.first, self.codebook)
        for buffer, value in zip((self.codebook, self.counts, self.sums), state):
            buffer.copy_(value)
        self.step += 1
        self._steps += 1
        return assignment.first, batch_counts[0], quantized

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

    def to_estimator(self):
        """This layer as a fitted :class:`KohonenQuantizer` / :class:`EMAQuantizer` (NumPy)."""
        estimator = clone(self._estimator)
        estimator._check_params(None)
        estimator._store(EMAState(*(to_numpy(b) for b in (self.codebook, self.counts, self.sums))))
        estimator.n_features_in_ = self.dim
        estimator.n_steps_ = self._steps
        estimator.n_iter_ = 0
        return estimator

    @classmethod
    def from_estimator(cls, estimator, *, commitment=0.25, channels_first=False):
        """A layer with the settings and the fitted state of ``estimator``."""
        if not isinstance(estimator, cls.estimator_class):
            raise TypeError(f"{cls.__name__}.from_estimator needs a {cls.estimator_class.__name__}, got {type(estimator).__name__}.")
        check_is_fitted(estimator)
        params = estimator.get_params()
        shared = (set(inspect.signature(cls).parameters) & set(params)) - {"init"}
        layer = cls(
            estimator.n_features_in_,
            **{name: params[name] for name in shared},
            init=to_numpy(estimator.cluster_centers_),
            commitment=commitment,
            channels_first=channels_first,
        )
        layer.counts.copy_(torch.as_tensor(to_numpy(estimator.counts_)))
        layer.sums.copy_(torch.as_tensor(to_numpy(estimator.sums_)))
        layer.step.fill_(estimator.n_steps_)
        layer._steps = int(estimator.n_steps_)
        return layer


class KohonenVQ(_EMAQuantizerLayer):
    """Kohonen (KSOM) vector-quantisation layer for a VQ-VAE bottleneck.

    The codes sit on a grid; each training step spreads every assignment
    over the winner's grid neighbours with weights P(t) and applies the EMA
    codebook update (Irie, Csordas & Schmidhuber 2023; SPEC section 1).
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
    ):
        settings = dict(
            grid_shape=grid_shape, hexagonal=hexagonal, toroidal=toroidal, neighbourhood=neighbourhood,
            sigma=sigma, sigma_end=sigma_end, schedule=schedule, shrink=shrink, schedule_steps=schedule_steps,
            decay=decay, epsilon=epsilon, initial_count=initial_count, update=update,
        )  # fmt: skip
        super().__init__(dim, settings, init=init, commitment=commitment, channels_first=channels_first)


class EMAVQ(_EMAQuantizerLayer):
    """EMA vector-quantisation layer (VQ-VAE, van den Oord et al. 2017).

    :class:`KohonenVQ` without a neighbourhood: each training step moves the
    codes to exponential moving averages of their assigned vectors, with
    Laplace-smoothed counts (SPEC section 1).  Parameters as in
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
    ):
        settings = dict(n_clusters=n_clusters, decay=decay, epsilon=epsilon, initial_count=initial_count, update=update)
        super().__init__(dim, settings, init=init, commitment=commitment, channels_first=channels_first)
