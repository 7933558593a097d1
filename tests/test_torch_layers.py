"""The torch VQ layers: docs/design.md sections 2-4 step for step, gradients, precision, errors, conversions."""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given

from sklearn_ksom import EMAQuantizer, KohonenQuantizer
from torch_adapter import EMAVQ, KohonenVQ, VQOutput

from .formula_reference import grid_distances, ksom_settings, ksom_step, reference_run, topographic_error

# ----------------------------------------------- docs/design.md sections 2-4
#
# The reference below is docs/design.md sections 2-4 written literally in NumPy: direct
# distances, a one-hot E, a dense K x K matrix P(t) from the grid distances,
# E~ = E P.  The layer computes the same through the shared core (GEMM
# distances, scatter-adds, separable P on K-sized statistics).

GRID = (2, 3)
TAU = 0.1


def spec_neighbourhood(kind, step):
    rows, cols = np.unravel_index(np.arange(np.prod(GRID)), GRID)
    coordinates = np.stack([rows, cols], axis=1).astype(float)
    d = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=-1)
    if kind == "none":
        return np.eye(len(d))
    if kind == "hard":
        P = (d < 1.5) / (1 + TAU * step)
    else:  # the paper's Gaussian, base b = 10
        P = np.exp(-d * (1 + TAU * step) / 10.0)
    np.fill_diagonal(P, 1.0)
    return P


def make_layer(kind, **kwargs):
    if kind == "none":
        return EMAVQ(3, 6, **kwargs)
    if kind == "hard":
        return KohonenVQ(3, GRID, neighbourhood="hard", shrink=TAU, **kwargs)
    return KohonenVQ(3, GRID, neighbourhood="exponential", sigma=10.0, schedule="inverse", shrink=TAU, **kwargs)


@pytest.mark.parametrize("update", ["all", "active"])
@pytest.mark.parametrize("initial_count", [1.0, 0.0])
@pytest.mark.parametrize("kind", ["hard", "gaussian", "none"])
def test_training_steps_follow_spec_section_1(kind, initial_count, update):
    rng = np.random.default_rng(7)
    W = rng.normal(size=(6, 3)).astype(np.float32).astype(np.float64)  # the layer starts in float32
    counts, sums = np.full(6, initial_count), W.copy()
    settings = dict(decay=0.9, epsilon=1e-5, initial_count=initial_count, update=update)
    layer = make_layer(kind, init=W, **settings).double().train()
    for step in range(4):
        Z = rng.normal(size=(8, 3))
        W_before = W
        W, counts, sums, codes = ksom_step(
            W, counts, sums, Z, spec_neighbourhood(kind, step),
            decay=0.9, epsilon=1e-5, update_all=update == "all",
        )  # fmt: skip
        out = layer(torch.from_numpy(Z))
        np.testing.assert_array_equal(out.codes.numpy(), codes)
        np.testing.assert_allclose(out.quantized.detach().numpy(), W_before[codes], rtol=1e-12)
        for name, expected in [("codebook", W), ("counts", counts), ("sums", sums)]:
            np.testing.assert_allclose(getattr(layer, name).numpy(), expected, rtol=1e-10, atol=1e-12, err_msg=name)
    assert int(layer.step) == 4


@pytest.mark.parametrize(
    ("layer_class", "options", "message"),
    [
        (KohonenVQ, dict(dim=4, grid_shape=(3, 3), decay=1.5), "'decay' parameter of KohonenVQ"),
        (KohonenVQ, dict(dim=4, grid_shape=(3, 0)), "grid_shape must be a non-empty tuple"),
        (KohonenVQ, dict(dim=4, sigma=-1.0), "'sigma' parameter of KohonenVQ"),
        (EMAVQ, dict(dim=0, n_clusters=8), "'dim' parameter of EMAVQ"),
        (EMAVQ, dict(dim=4, n_clusters=0), "'n_clusters' parameter of EMAVQ"),
    ],
)
def test_check_options_refuses_what_the_constructor_refuses(layer_class, options, message):
    for make in (layer_class, layer_class.check_options):
        with pytest.raises(ValueError, match=message):
            make(**options)


def test_check_options_gives_the_settings_the_layer_holds():
    options = dict(dim=4, grid_shape=(4, 3), hexagonal=True, neighbourhood="gaussian", sigma=1.5, decay=0.9)
    schedule, ema = KohonenVQ.check_options(**options)
    layer = KohonenVQ(**options)
    assert schedule == layer.neighbourhood_schedule and ema == layer.ema
    schedule, ema = EMAVQ.check_options(4, 16, update="active")
    assert schedule.is_identity and schedule.grid.n_codes == 16 and ema == EMAVQ(4, 16, update="active").ema


def test_defaults_are_the_reference_settings():
    layer = KohonenVQ(64)
    assert layer.grid.shape == (32, 16) and layer.n_codes == 512
    assert torch.equal(layer.counts, torch.ones(512)) and torch.equal(layer.sums, layer.codebook)
    assert layer.sums.data_ptr() != layer.codebook.data_ptr()
    assert layer.codebook.dtype == torch.float32 and layer.step.dtype == torch.int64
    assert EMAVQ(64).grid.shape == (512,)
    settings = layer.to_estimator().get_params()
    assert (settings["neighbourhood"], settings["schedule"], settings["shrink"]) == ("hard", "inverse", 0.1)
    assert (settings["decay"], settings["epsilon"], settings["update"]) == (0.99, 1e-5, "all")


# ------------------------------------------------- gradients, loss, modes


@pytest.mark.parametrize("training", [True, False])
def test_gradient_passes_straight_through_and_commitment_loss_has_its_value(training):
    torch.manual_seed(0)
    layer = KohonenVQ(4, (3, 3), commitment=0.25).train(training)
    codebook = layer.codebook.clone()
    z = torch.randn(5, 7, 4, requires_grad=True)
    out = layer(z)
    assert isinstance(out, VQOutput)
    expected_q = codebook[out.codes]
    torch.testing.assert_close(out.quantized, expected_q)  # forward value: the nearest codes (z + (q - z))
    assert torch.equal(out.codes, torch.cdist(z.detach(), codebook.expand(5, -1, -1)).argmin(-1))
    torch.testing.assert_close(out.loss, 0.25 * torch.mean((z.detach() - expected_q) ** 2))

    upstream = torch.randn_like(z)
    (out.quantized * upstream).sum().backward(retain_graph=True)
    assert torch.equal(z.grad, upstream)  # straight-through: identity Jacobian
    z.grad = None
    out.loss.backward()
    torch.testing.assert_close(z.grad, 2 * 0.25 * (z.detach() - expected_q) / z.numel())


def test_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    encoder, layer = torch.nn.Linear(3, 4), EMAVQ(4, 8)
    x = torch.randn(16, 3)
    out = layer(encoder(x))
    (out.quantized.pow(2).mean() + out.loss).backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    assert layer.codebook.grad is None and not layer.codebook.requires_grad


def test_eval_mode_leaves_every_buffer_unchanged():
    torch.manual_seed(0)
    layer = KohonenVQ(4, (3, 3)).train()
    layer(torch.randn(50, 4))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.eval()
    out = layer(torch.randn(50, 4))
    for name, value in layer.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert layer._steps == 1
    used = torch.bincount(out.codes, minlength=9).double() / len(out.codes)
    used = used[used > 0]
    assert float(out.perplexity) == pytest.approx(math.exp(-float((used * used.log()).sum())), rel=1e-5)
    assert float(out.utilisation) == pytest.approx(len(used) / 9)


def test_training_mode_updates_buffers_and_counts_steps():
    layer = EMAVQ(4, 8).train()
    before = layer.codebook.clone()
    for _ in range(3):
        layer(torch.randn(32, 4))
    assert int(layer.step) == 3 and layer._steps == 3
    assert not torch.equal(layer.codebook, before)


def test_perplexity_and_utilisation_describe_the_batch():
    layer = EMAVQ(2, 4, init=np.array([[0.0, 0], [10, 0], [0, 10], [10, 10]])).eval()
    out = layer(torch.tensor([[0.1, 0], [0, 0.2], [9.9, 0.1], [10, 0]]))  # codes 0, 0, 1, 1
    torch.testing.assert_close(out.perplexity, torch.tensor(2.0))
    torch.testing.assert_close(out.utilisation, torch.tensor(0.5))


# ------------------------------------------------------ layouts and state


def test_channels_first_maps_match_channels_last_vectors():
    torch.manual_seed(0)
    maps = torch.randn(2, 4, 5, 6)
    first = KohonenVQ(4, (3, 3), channels_first=True).eval()
    last = KohonenVQ(4, (3, 3), init=first.codebook).eval()
    out_first, out_last = first(maps), last(maps.movedim(1, -1))
    assert out_first.quantized.shape == maps.shape and out_first.codes.shape == (2, 5, 6)
    assert torch.equal(out_first.codes, out_last.codes)
    assert torch.equal(out_first.quantized, out_last.quantized.movedim(-1, 1))
    torch.testing.assert_close(first.embed(out_first.codes), out_first.quantized)
    torch.testing.assert_close(last.embed(out_last.codes), out_last.quantized)
    assert first.embed(out_first.codes).shape == maps.shape


def test_embed_rejects_codes_outside_the_codebook():
    layer = EMAVQ(4, 8)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        layer.embed(torch.tensor([0, 8]))
    with pytest.raises(TypeError, match="integer"):
        layer.embed(torch.tensor([0.0]))


def test_saved_state_loads_with_weights_only_and_training_continues_identically():
    torch.manual_seed(0)
    layer = KohonenVQ(4, (3, 3), neighbourhood="gaussian", schedule="exponential", schedule_steps=10)
    for _ in range(3):
        layer(torch.randn(20, 4))
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    restored = KohonenVQ(4, (3, 3), neighbourhood="gaussian", schedule="exponential", schedule_steps=10)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored._steps == 3
    batch = torch.randn(20, 4)
    layer(batch), restored(batch)
    for name, value in layer.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name


def test_buffers_move_with_the_module():
    layer = EMAVQ(4, 8).to(torch.float64)
    assert {b.dtype for name, b in layer.named_buffers() if name != "step"} == {torch.float64}
    assert layer(torch.randn(3, 4, dtype=torch.float64)).quantized.dtype == torch.float64


# ---------------------------------------------------------- mixed precision


def test_bf16_autocast_keeps_float32_statistics_and_the_float32_codes():
    torch.manual_seed(0)
    z = torch.randn(256, 16).to(torch.bfloat16)
    reference, mixed = KohonenVQ(16, (4, 4)), KohonenVQ(16, (4, 4))
    mixed.load_state_dict(reference.state_dict())
    expected = reference(z.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixed(z)
    assert torch.equal(out.codes, expected.codes)
    assert out.quantized.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    for name, value in mixed.state_dict().items():
        assert value.dtype == reference.state_dict()[name].dtype
        assert torch.equal(value, reference.state_dict()[name]), name


def test_half_precision_buffers_are_refused():
    layer = EMAVQ(4, 8).to(torch.bfloat16)
    with pytest.raises(TypeError, match="autocast"):
        layer(torch.randn(3, 4, dtype=torch.bfloat16))


# ---------------------------------------------------------------- bad input

BAD_INPUTS = {
    "wrong last dimension": (torch.randn(10, 5), ValueError, "last dimension to be 4"),
    "NaN": (torch.tensor([[0.0, 1, 2, 3], [float("nan"), 0, 0, 0]]), ValueError, "NaN or inf"),
    "inf": (torch.tensor([[0.0, 1, 2, 3], [float("inf"), 0, 0, 0]]), ValueError, "NaN or inf"),
    # Finite values whose squares overflow float32: inf distances.
    "too large to square": (torch.tensor([[0.0, 1, 2, 3], [1e20, 0, 0, 0]]), ValueError, "too large to square"),
    "empty batch": (torch.zeros(0, 4), ValueError, "empty batch"),
    "integers": (torch.zeros(3, 4, dtype=torch.int64), TypeError, "floating-point"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_leaves_the_buffers_unchanged(case):
    z, error, message = BAD_INPUTS[case]
    layer = KohonenVQ(4, (3, 3)).train()
    layer(torch.randn(10, 4))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(error, match=message):
        layer(z)
    for name, value in layer.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert layer._steps == 1


def test_a_state_of_the_wrong_size_loads_nothing():
    layer = KohonenVQ(4, (3, 3))
    layer(torch.randn(10, 4))
    other = KohonenVQ(4, (4, 4))
    for _ in range(5):
        other(torch.randn(10, 4))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch for codebook"):
        layer.load_state_dict(other.state_dict())
    for name, value in layer.state_dict().items():
        assert torch.equal(value, before[name]), name  # the step and the counts too
    assert layer._steps == 1
    layer(torch.randn(10, 4))
    assert int(layer.step) == 2


def test_channels_first_input_needs_the_channels_on_axis_1():
    with pytest.raises(ValueError, match=r"axis 1"):
        EMAVQ(4, 8, channels_first=True)(torch.randn(2, 5, 5, 4))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: KohonenVQ(4, decay=1.5), "'decay' parameter of KohonenVQ"),
        (lambda: KohonenVQ(4, neighbourhood="cosine"), "'neighbourhood' parameter"),
        (lambda: KohonenVQ(4, update="some"), "'update' parameter"),
        (lambda: EMAVQ(0), "'dim' parameter of EMAVQ"),
        (lambda: EMAVQ(4, 8, commitment=-1), "'commitment' parameter"),
        (lambda: EMAVQ(4, 8, init="uniform"), "'init' parameter"),
        (lambda: EMAVQ(4, 8, init=np.zeros((8, 3))), r"expected \(n_codes, dim\) = \(8, 4\)"),
        (lambda: KohonenVQ(4, (2, 2, 2), hexagonal=True), "hexagonal grid must be 2-D"),
    ],
)
def test_bad_parameters_get_an_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -------------------------------------------------------------- conversions


def test_exported_layer_is_a_fitted_estimator_with_the_same_codes():
    torch.manual_seed(0)
    layer = KohonenVQ(4, (3, 4), hexagonal=True, neighbourhood="gaussian")
    for _ in range(5):
        layer(torch.randn(64, 4))
    estimator = layer.to_estimator()
    assert isinstance(estimator, KohonenQuantizer) and estimator.grid_ == layer.grid
    assert estimator.n_steps_ == 5 and estimator.get_params()["hexagonal"]
    np.testing.assert_array_equal(estimator.counts_, layer.counts.numpy())
    X = torch.randn(100, 4)
    np.testing.assert_array_equal(estimator.predict(X.numpy()), layer.eval()(X).codes.numpy())
    # The exported map's topographic error, as defined on the hexagonal grid written out here.
    expected = topographic_error(X.numpy(), layer.codebook.numpy(), grid_distances((3, 4), hexagonal=True), 1.0)
    assert estimator.topographic_error(X.numpy()) == pytest.approx(expected)
    assert isinstance(EMAVQ(4, 8).to_estimator(), EMAQuantizer)


@pytest.mark.parametrize(
    ("estimator", "layer_class"),
    [
        (KohonenQuantizer((3, 3), neighbourhood="hard", schedule="inverse", init="random", random_state=0), KohonenVQ),
        (EMAQuantizer(6, decay=0.9, update="active", random_state=0), EMAVQ),
    ],
)
def test_layer_from_a_fitted_estimator_continues_its_training(estimator, layer_class):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    estimator.fit(X).partial_fit(X[:50])
    layer = layer_class.from_estimator(estimator, commitment=0.5)
    assert layer.commitment == 0.5 and int(layer.step) == estimator.n_steps_
    np.testing.assert_array_equal(layer.eval()(torch.from_numpy(X)).codes.numpy(), estimator.predict(X))
    batch = X[50:120]
    estimator.partial_fit(batch)
    layer.train()(torch.from_numpy(batch))
    np.testing.assert_allclose(layer.codebook.numpy(), estimator.cluster_centers_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.counts.numpy(), estimator.counts_, rtol=1e-5)
    round_trip = layer_class.from_estimator(layer.to_estimator())
    for name, value in layer.state_dict().items():
        assert torch.equal(round_trip.state_dict()[name], value), name


def test_the_exported_estimator_and_the_layer_share_no_memory():
    torch.manual_seed(0)
    layer = KohonenVQ(4, (3, 3))
    layer(torch.randn(32, 4))
    estimator = layer.to_estimator()
    exported = {name: getattr(estimator, name).copy() for name in ("cluster_centers_", "counts_", "sums_")}
    layer(torch.randn(32, 4))  # training the layer leaves the estimator as exported
    for name, value in exported.items():
        np.testing.assert_array_equal(getattr(estimator, name), value, err_msg=name)
    codebook = layer.codebook.clone()
    estimator.cluster_centers_ += 1.0  # writing into the estimator leaves the layer alone
    estimator.partial_fit(np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32))
    assert torch.equal(layer.codebook, codebook)


def test_from_estimator_needs_the_matching_fitted_estimator():
    with pytest.raises(TypeError, match="needs a KohonenQuantizer"):
        KohonenVQ.from_estimator(EMAQuantizer(4))
    with pytest.raises(Exception, match="not fitted"):
        EMAVQ.from_estimator(EMAQuantizer(4))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("layer_class", [KohonenVQ, EMAVQ])
def test_an_init_array_with_nan_or_inf_is_refused(bad, layer_class):
    init = np.zeros((6, 3), dtype=np.float32)
    init[2, 1] = bad
    size = {"grid_shape": (2, 3)} if layer_class is KohonenVQ else {"n_clusters": 6}
    with pytest.raises(ValueError, match="init array contains NaN or infinity"):
        layer_class(3, **size, init=init)


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(schedule=lambda step, *_: float("nan") if step >= 2 else 1.0), "gave the width nan at step 2"),
        (
            # Widths 2, 4/3, 1 over the first three steps.
            dict(neighbourhood=lambda d, s: d * np.nan if s < 1.1 else torch.exp(-d / s), sigma=2.0, shrink=0.5),
            "NaN or infinite weights",
        ),
    ],
)
def test_a_callable_that_turns_bad_midway_leaves_the_buffers_unchanged(params, message):
    torch.manual_seed(0)
    layer = KohonenVQ(3, GRID, **params).train()
    layer(torch.randn(10, 3))
    layer(torch.randn(10, 3))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        layer(torch.randn(10, 3))
    for name, value in layer.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert layer._steps == 2


@given(ksom_settings())
def test_each_training_step_is_the_ksom_formula_with_p_written_out(case):
    settings, n_prior_steps, seed = case
    rng = np.random.default_rng(seed)
    # The layer keeps its init in float32: the reference starts from the same codes.
    W = rng.normal(size=(math.prod(settings["grid_shape"]), 3)).astype(np.float32).astype(np.float64)
    batches = [rng.normal(size=(12, 3)) for _ in range(n_prior_steps + 1)]
    expected, smallest_gap = reference_run(settings, W, batches)
    assume(smallest_gap > 1e-9)  # no tie at float64 precision
    layer = KohonenVQ(3, **settings, init=W).double().train()
    for Z, (W_ref, counts_ref, sums_ref, codes_ref) in zip(batches, expected):
        codes = layer(torch.from_numpy(Z)).codes.numpy()
        np.testing.assert_array_equal(codes, codes_ref)
        for name, value in [("codebook", W_ref), ("counts", counts_ref), ("sums", sums_ref)]:
            np.testing.assert_allclose(getattr(layer, name).numpy(), value, rtol=1e-9, atol=1e-9, err_msg=name)
