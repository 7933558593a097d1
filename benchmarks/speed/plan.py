"""How much the benchmark runs: the full run, ``--quick`` and the test's tiny one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityPlan:
    """The time-to-equal-quality comparison (``quality.py``)."""

    data: tuple  # image data sets, where installed (Gaussian blobs otherwise)
    features: tuple  # 784 = the pixels, fewer = the top principal components
    grids: tuple  # maps on the first data set
    other_grids: tuple  # maps on the others (empty: ``grids``)
    train_rows: int  # first rows of the training images (fit); None = all 60 000
    test_rows: int  # first rows of the t10k images (held-out QE and TE); None = all 10 000
    rounds: int
    torchsom_epochs: int


@dataclass(frozen=True)
class Plan:
    name: str
    n_samples: int  # rows of the streaming and batch data (docs/design.md section 10: 60 000)
    batch_size: int  # docs/design.md section 10: 1024
    # (grid shape, n_features) of the streaming comparison; the first is the reference shape (docs/design.md section 10).
    streaming_shapes: tuple
    repeats: int  # rounds per comparison; figures are medians
    minisom_samples: int  # MiniSom steps per timed run (it runs one sample a step)
    batch_grid: tuple  # map of the fit-to-the-same-error comparison
    batch_iterations: tuple  # the max_iter ladder searched for the peers' error
    torchsom_epochs: int
    minisom_offline_iterations: int
    scaling_n: tuple  # scaling sweeps: N at (K, D) = (256, 64) ...
    scaling_k: tuple  # ... K at D = 64 and D at K = 256, both at scaling_rows rows
    scaling_d: tuple
    scaling_rows: int
    scaling_fit_iterations: int
    scaling_repeats: int
    large_grid: tuple  # the map run without a K x K matrix (issue: 256 x 256)
    large_kernels: tuple
    large_steps: int
    layer_shape: tuple  # (K, D, vectors per batch) of the torch-layer comparison
    layer_rounds: int
    layer_steps: int  # training steps per contender per round
    quality: QualityPlan


FULL = Plan(
    name="full",
    n_samples=60_000,
    batch_size=1024,
    streaming_shapes=(((16, 16), 64), ((32, 32), 64), ((64, 64), 64), ((16, 16), 256)),
    repeats=5,
    minisom_samples=5000,
    batch_grid=(16, 16),
    batch_iterations=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50),
    torchsom_epochs=10,
    minisom_offline_iterations=2,
    scaling_n=(7_500, 15_000, 30_000, 60_000, 120_000),
    scaling_k=(64, 256, 1024, 4096, 16384),
    scaling_d=(16, 64, 256, 1024),
    scaling_rows=30_000,
    scaling_fit_iterations=5,
    scaling_repeats=3,
    large_grid=(256, 256),
    large_kernels=("gaussian", "hard", "exponential"),
    large_steps=10,
    layer_shape=(512, 64, 16384),
    layer_rounds=21,
    layer_steps=3,
    quality=QualityPlan(
        data=("fashion-mnist", "mnist"),
        features=(64, 784),
        grids=((16, 16), (32, 32)),
        other_grids=((16, 16),),  # the 32 x 32 maps of 784-D pixels take the longest: on one data set
        train_rows=None,
        test_rows=None,
        rounds=3,
        torchsom_epochs=10,
    ),
)

QUICK = Plan(
    name="quick",
    n_samples=8192,
    batch_size=1024,
    streaming_shapes=(((16, 16), 64), ((32, 32), 64)),
    repeats=2,
    minisom_samples=500,
    batch_grid=(16, 16),
    batch_iterations=(1, 2, 4, 8, 16),
    torchsom_epochs=2,
    minisom_offline_iterations=1,
    scaling_n=(2048, 8192),
    scaling_k=(64, 256, 1024),
    scaling_d=(16, 64),
    scaling_rows=4096,
    scaling_fit_iterations=5,
    scaling_repeats=2,
    large_grid=(64, 64),
    large_kernels=("gaussian", "hard"),
    large_steps=3,
    layer_shape=(512, 64, 16384),
    layer_rounds=5,
    layer_steps=2,
    quality=QualityPlan(
        data=("fashion-mnist",),
        features=(64,),
        grids=((8, 8),),
        other_grids=(),
        train_rows=6000,
        test_rows=2000,
        rounds=2,
        torchsom_epochs=2,
    ),
)

# The test's: every code path of --quick on shapes that run in seconds.
TINY = Plan(
    name="tiny",
    n_samples=600,
    batch_size=128,
    streaming_shapes=(((4, 4), 8),),
    repeats=1,
    minisom_samples=50,
    batch_grid=(4, 4),
    batch_iterations=(1, 2, 4),
    torchsom_epochs=1,
    minisom_offline_iterations=1,
    scaling_n=(256, 512),
    scaling_k=(16, 64),
    scaling_d=(4, 8),
    scaling_rows=512,
    scaling_fit_iterations=2,
    scaling_repeats=1,
    large_grid=(16, 16),
    large_kernels=("gaussian",),
    large_steps=2,
    layer_shape=(32, 8, 256),
    layer_rounds=1,
    layer_steps=1,
    quality=QualityPlan(
        data=("fashion-mnist",),
        features=(8,),
        grids=((4, 4),),
        other_grids=(),
        train_rows=600,
        test_rows=300,
        rounds=1,
        torchsom_epochs=1,
    ),
)

PLANS = {plan.name: plan for plan in (FULL, QUICK, TINY)}
