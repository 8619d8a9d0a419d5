"""Label smoothing (the notes' three snippets and every named convention), focal loss, and the
other losses PyTorch lacks (top-2 ranking margin, distance -> probability)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import mldl
from mldl import losses as L
from mldl.losses.classification import _SoftmaxFocalDense, _SoftmaxFocalIndex
from tests import notes_snippets as notes

D = torch.float64


def _logits(n: int, k: int, scale: float = 2.0, dtype=D) -> torch.Tensor:
    return (scale * torch.randn(n, k, dtype=dtype)).requires_grad_()


def _grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss.sum(), x)
    return g


# ------------------------------------------------------------------ the notes' snippets


@pytest.mark.parametrize(("k", "eps"), [(5, 0.1), (5, 0.3), (10, 0.2), (3, 0.5), (2, 0.8)])
def test_first_snippet_is_others_smoothing(k, eps):
    """Snippet 1 (pytorch #7455): ε/(K-1) to the other classes, mean over the batch.
    K=2, ε=0.8 needs ε' = εK/(K-1) > 1, the extrapolated branch."""
    x, y = _logits(7, k), torch.randint(0, k, (7,))
    want = notes.LabelSmoothingLoss(k, smoothing=eps)(x, y)
    got = L.cross_entropy(x, y, label_smoothing=eps, smoothing="others")
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.6, 1.0])
def test_second_snippet_is_uniform_smoothing(reduction, eps):
    """Snippet 2 (fastai-style LabelSmoothingCrossEntropy) is PyTorch's ε/K rule."""
    x, y = _logits(6, 4), torch.randint(0, 4, (6,))
    want = notes.LabelSmoothingCrossEntropy(epsilon=eps, reduction=reduction)(x, y)
    got = L.cross_entropy(x, y, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


@pytest.mark.parametrize(("k", "pad", "eps"), [(6, 0, 0.1), (6, 3, 0.4), (4, 1, 1.0)])
def test_third_snippet_is_opennmt_kl(k, pad, eps):
    """Snippet 3 (OpenNMT-py): KL to a target with ε/(K-2) off-target mass, the padding
    column zeroed and padded rows all zero; reproduced by kl_div on smooth_labels."""
    torch.set_default_dtype(D)  # the snippet builds its buffer in the default dtype
    try:
        snippet = notes.OpenNMTLabelSmoothingLoss(eps, k, ignore_index=pad)
    finally:
        torch.set_default_dtype(torch.float32)
    x = _logits(9, k)
    y = torch.randint(0, k, (9,))
    y[[1, 4]] = pad  # two padded positions
    want = snippet(F.log_softmax(x, -1), y)
    q = L.smooth_labels(y, k, eps, "opennmt", ignore_index=pad, dtype=D)
    got = L.kl_div(F.log_softmax(x, -1), q, reduction="sum")
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


def test_opennmt_kl_differs_from_cross_entropy_by_the_target_entropy_only():
    """The KL form and the CE form with the same target differ by H(q), a constant: same
    gradients, values apart by exactly Σ q log q."""
    k, pad, eps = 7, 0, 0.2
    x, y = _logits(5, k), torch.randint(1, k, (5,))
    q = L.smooth_labels(y, k, eps, "opennmt", ignore_index=pad, dtype=D)
    kl = L.kl_div(F.log_softmax(x, -1), q, reduction="sum")
    ce = L.cross_entropy(x, q, reduction="sum")
    entropy = -(q[q > 0] * q[q > 0].log()).sum()
    torch.testing.assert_close(ce - kl, entropy)
    torch.testing.assert_close(_grad(kl, x), _grad(ce, x))


def test_opennmt_refuses_the_snippets_default_padding_index():
    """The snippet's default ignore_index=-100 zeroes column K-100 (a latent bug); ours asks
    for the real padding class instead."""
    with pytest.raises(ValueError, match=r"smooth_labels: .*opennmt.*padding class"):
        L.smooth_labels(torch.tensor([1, 2]), 200, 0.1, "opennmt")


# ------------------------------------------------------- smoothing conventions (hypothesis)

_targets = st.integers(2, 12).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(st.integers(0, k - 1), min_size=1, max_size=20),
        st.floats(0.0, 1.0),
    )
)


@given(_targets, st.sampled_from(["uniform", "others", "opennmt"]))
def test_every_convention_gives_distributions(case, variant):
    """Rows sum to 1 (ignored/padding rows to 0); the target keeps 1-ε (plus ε/K for uniform);
    no mass is negative."""
    k, labels, eps = case
    if variant == "opennmt" and k < 3:
        k = 3
    pad = 0
    y = torch.tensor(labels)
    q = L.smooth_labels(y, k, eps, variant, ignore_index=pad, dtype=D)
    assert q.shape == (len(labels), k)
    assert bool((q >= 0).all())
    padded = y == pad
    torch.testing.assert_close(q[padded].sum(-1), torch.zeros(int(padded.sum()), dtype=D))
    keep = ~padded
    torch.testing.assert_close(q[keep].sum(-1), torch.ones(int(keep.sum()), dtype=D))
    on = 1 - eps + (eps / k if variant == "uniform" else 0.0)
    on_target = q[keep].gather(1, y[keep].unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(on_target, torch.full_like(on_target, on))


@given(_targets, st.sampled_from(["uniform", "others", "opennmt"]))
def test_zero_smoothing_is_one_hot(case, variant):
    k, labels, _ = case
    k = max(k, 3)
    y = torch.tensor(labels)
    q = L.smooth_labels(y, k, 0.0, variant, ignore_index=-100 if variant != "opennmt" else k - 1)
    want = F.one_hot(y, k).float()
    if variant == "opennmt":
        want[y == k - 1] = 0.0
    torch.testing.assert_close(q, want)


def test_smooth_labels_class_dim_matches_input_layout():
    y = torch.randint(0, 4, (2, 3, 5))
    q = L.smooth_labels(y, 4, 0.2, class_dim=1)
    assert q.shape == (2, 4, 3, 5)
    torch.testing.assert_close(q.movedim(1, -1), L.smooth_labels(y, 4, 0.2))


@given(st.floats(0.0, 1.0), st.sampled_from(["half", "uniform", "flip"]))
def test_binary_conventions_map_labels_as_documented(eps, variant):
    y = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=D)
    got = L.smooth_binary_labels(y, eps, variant)
    k = y.shape[-1]
    want = {
        "half": y * (1 - eps) + eps / 2,  # Keras: toward 0.5
        "uniform": y * (1 - eps) + eps / k,  # timm: off = ε/K, on = 1 - ε + ε/K
        "flip": y * (1 - 2 * eps) + eps,  # smp: 0 -> ε, 1 -> 1 - ε
    }[variant]
    torch.testing.assert_close(got, want)
    assert bool(((got >= 0) & (got <= 1)).all())


@pytest.mark.parametrize("variant", ["half", "uniform", "flip"])
def test_bce_smoothing_applies_the_named_convention(variant):
    x = torch.randn(5, 3, dtype=D, requires_grad=True)
    y = torch.randint(0, 2, (5, 3)).to(D)
    smoothed = L.smooth_binary_labels(y, 0.2, variant)
    got = L.bce_with_logits(x, y, label_smoothing=0.2, smoothing=variant)
    want = F.binary_cross_entropy_with_logits(x, smoothed)
    torch.testing.assert_close(got, want)
    p = torch.sigmoid(x.detach())
    torch.testing.assert_close(
        L.bce(p, y, label_smoothing=0.2, smoothing=variant), F.binary_cross_entropy(p, smoothed)
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", ["uniform", "others"])
def test_cross_entropy_smoothing_equals_cross_entropy_on_the_smoothed_target(reduction, smoothing):
    """The fused path (no (N, K) target) equals CE against smooth_labels' distribution, with
    class weights and ignored items (mean over Σ w_y of the kept items)."""
    k = 6
    x = _logits(8, k)
    y = torch.randint(0, k, (8,))
    y[2] = -100
    w = torch.rand(k, dtype=D) + 0.1
    got = L.cross_entropy(x, y, w, reduction=reduction, label_smoothing=0.3, smoothing=smoothing)
    q = L.smooth_labels(y, k, 0.3, smoothing, dtype=D)
    per_item = -(q * w * F.log_softmax(x, -1)).sum(-1)
    kept = y != -100
    want = {
        "none": per_item,
        "sum": per_item.sum(),
        "mean": per_item.sum() / w[y[kept]].sum(),
    }[reduction]
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


def test_one_hot_probability_targets_equal_index_targets_under_weights():
    """Ours: one-hot probabilities give the index-target loss with weight and 'mean'.
    PyTorch divides by N instead (pytorch #107680), so it disagrees."""
    x, y = _logits(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([25.0, 25.0, 100.0], dtype=D)
    onehot = F.one_hot(y, 3).to(D)
    for eps in (0.0, 0.2):
        by_index = L.cross_entropy(x, y, w, label_smoothing=eps)
        by_prob = L.cross_entropy(x, onehot, w, label_smoothing=eps)
        torch.testing.assert_close(by_prob, by_index)
        assert not torch.allclose(F.cross_entropy(x, onehot, w, label_smoothing=eps), by_index)


# ------------------------------------------------------------------------------- focal


def _naive_focal(x, y, gamma, alpha=None):
    """The formula as written, by autograd: -α (1-p_y)^γ log p_y."""
    log_p = F.log_softmax(x, -1).gather(1, y.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    return loss if alpha is None else alpha[y] * loss


@given(
    st.integers(1, 9),
    st.integers(2, 7),
    st.sampled_from(["none", "mean", "sum"]),
    st.floats(0.0, 0.9),
    st.booleans(),
    st.booleans(),
)
def test_focal_with_gamma_zero_is_cross_entropy(n, k, reduction, eps, weighted, ignore):
    x = _logits(n, k)
    y = torch.randint(0, k, (n,))
    if ignore:
        y[0] = -100
    w = torch.rand(k, dtype=D) + 0.1 if weighted else None
    got = L.focal(x, y, 0.0, None, w, reduction=reduction, label_smoothing=eps)
    want = F.cross_entropy(x, y, w, reduction=reduction, label_smoothing=eps)
    torch.testing.assert_close(got, want, equal_nan=True)
    if not (ignore and n == 1):  # an all-ignored batch: NaN mean, as in PyTorch
        torch.testing.assert_close(_grad(got, x), _grad(want, x))


@given(st.integers(1, 9), st.integers(1, 5), st.sampled_from(["none", "mean", "sum"]))
def test_sigmoid_focal_with_gamma_zero_is_bce_with_logits(n, c, reduction):
    x = (3 * torch.randn(n, c, dtype=D)).requires_grad_()
    y = torch.rand(n, c, dtype=D)
    got = L.sigmoid_focal(x, y, gamma=0.0, reduction=reduction)
    want = F.binary_cross_entropy_with_logits(x, y, reduction=reduction)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_focal_matches_the_formula_where_the_formula_is_stable(gamma):
    x, y = _logits(10, 5), torch.randint(0, 5, (10,))
    alpha = torch.rand(5, dtype=D)
    got = L.focal(x, y, gamma, alpha, reduction="none")
    want = _naive_focal(x, y, gamma, alpha)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))


def test_keras_categorical_focal_golden_vector():
    """Keras CategoricalFocalCrossentropy(alpha=0.25, gamma=2) documentation example."""
    probs = torch.tensor([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]], dtype=D)
    got = L.focal(probs.log(), torch.tensor([1, 2]), gamma=2.0, alpha=0.25, reduction="none")
    torch.testing.assert_close(got, torch.tensor([2.63401289e-04, 6.75912094e-01], dtype=D))


def test_keras_binary_focal_golden_value():
    """Keras BinaryFocalCrossentropy(gamma=2, from_logits=True) documentation example."""
    x = torch.tensor([-18.6, 0.51, 2.94, -12.8], dtype=D)
    got = L.sigmoid_focal(x, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=D), gamma=2.0)
    assert abs(got.item() - 0.691) < 5e-4


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 2.0])
def test_focal_custom_functions_pass_gradcheck(gamma):
    x = torch.randn(4, 5, dtype=D, requires_grad=True)
    t = torch.tensor([0, 2, 4, 1])
    c = torch.rand(4, dtype=D)
    assert torch.autograd.gradcheck(lambda z: _SoftmaxFocalIndex.apply(z, t, c, gamma), (x,))
    coef = torch.rand(4, 5, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, q: _SoftmaxFocalDense.apply(z, q, gamma), (x, coef))


def test_focal_soft_target_gradient_flows_to_the_target():
    x = torch.randn(3, 4, dtype=D, requires_grad=True)
    q = torch.softmax(torch.randn(3, 4, dtype=D), -1).requires_grad_()
    with mldl.checks(False):  # gradcheck perturbs q off the simplex
        assert torch.autograd.gradcheck(lambda a, b: L.focal(a, b, 1.5, reduction="sum"), (x, q))


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_stays_finite_when_the_target_is_certain(gamma, dtype):
    """At p_y = 1 (a logit margin of 40 in float64, 20 in float32) the formula's autograd gives
    a NaN gradient for γ < 1 ((1-p)^(γ-1) · log p = inf · 0); the closed form gives its
    limit, 0, for every γ."""
    margin = 40.0 if dtype == torch.float64 else 20.0
    x = torch.tensor([[margin, 0.0, 0.0], [0.0, 1.0, 2.0]], dtype=dtype, requires_grad=True)
    y = torch.tensor([0, 2])
    naive = _grad(_naive_focal(x, y, gamma), x)
    if gamma < 1:
        assert torch.isnan(naive[0]).any()  # what we fix
    loss = L.focal(x, y, gamma, reduction="none")
    g = _grad(loss, x)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    assert loss[0].item() == 0.0
    torch.testing.assert_close(g[0], torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(g[1], naive[1])  # the ordinary row is unchanged


def test_sigmoid_focal_is_exact_at_infinite_logits():
    inf = math.inf
    x = torch.tensor([inf, -inf, inf, -inf, 2.0], dtype=D, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=D)
    for gamma in (0.0, 0.5, 2.0):
        loss = L.sigmoid_focal(x, y, gamma, reduction="none")
        assert loss[:2].tolist() == [0.0, 0.0]
        assert loss[2:4].tolist() == [inf, inf]
        g = _grad(loss[[0, 1, 4]], x)
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g[:4], torch.zeros(4, dtype=D))


@pytest.mark.parametrize("gamma", [0.3, 2.0])
def test_sigmoid_focal_gradcheck(gamma):
    x = torch.randn(4, 3, dtype=D, requires_grad=True)
    y = torch.rand(4, 3, dtype=D)
    assert torch.autograd.gradcheck(lambda z: L.sigmoid_focal(z, y, gamma, 0.25), (x,))


def test_focal_mean_skips_ignored_items_and_weights_the_denominator():
    """kornia and smp count ignored items (and C) in the mean; ours divides by the kept
    items' Σ w_y, as cross-entropy does."""
    x, y = _logits(6, 4), torch.tensor([0, 1, -100, 3, -100, 2])
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=D)
    per_item = L.focal(x, y, 2.0, weight=w, reduction="none")
    assert per_item[[2, 4]].tolist() == [0.0, 0.0]
    kept = y != -100
    want = per_item.sum() / w[y[kept]].sum()
    torch.testing.assert_close(L.focal(x, y, 2.0, weight=w), want)
    plain = L.focal(x, y, 2.0, reduction="none")
    torch.testing.assert_close(L.focal(x, y, 2.0), plain.sum() / kept.sum())


def test_focal_alpha_scales_and_kornia_convention_is_a_tensor():
    x, y = _logits(6, 4), torch.randint(0, 4, (6,))
    base = L.focal(x, y, 2.0, reduction="none")
    torch.testing.assert_close(L.focal(x, y, 2.0, 0.25, reduction="none"), 0.25 * base)
    a = 0.25
    kornia_alpha = torch.tensor([1 - a, a, a, a], dtype=D)
    got = L.focal(x, y, 2.0, kornia_alpha, reduction="none")
    torch.testing.assert_close(got, kornia_alpha[y] * base)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_one_hot_probabilities_equal_index_targets(reduction):
    x, y = _logits(5, 4), torch.tensor([0, 3, 1, 1, 2])
    w = torch.rand(4, dtype=D) + 0.5
    by_index = L.focal(x, y, 1.5, 0.5, w, reduction=reduction)
    by_prob = L.focal(x, F.one_hot(y, 4).to(D), 1.5, 0.5, w, reduction=reduction)
    torch.testing.assert_close(by_prob, by_index)
    torch.testing.assert_close(_grad(by_prob, x), _grad(by_index, x))


def test_focal_spatial_layout_matches_flattened_rows():
    x = torch.randn(2, 4, 3, 5, dtype=D, requires_grad=True)
    y = torch.randint(0, 4, (2, 3, 5))
    got = L.focal(x, y, 2.0, reduction="none")
    rows = x.movedim(1, -1).reshape(-1, 4)
    want = L.focal(rows, y.reshape(-1), 2.0, reduction="none").reshape(2, 3, 5)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_focal_half_precision_accumulates_in_float32(dtype):
    x32, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    x = x32.to(dtype).requires_grad_()
    got = L.focal(x, y, 2.0)
    assert got.dtype == dtype
    want = L.focal(x.detach().float(), y, 2.0)
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-3)
    (g,) = torch.autograd.grad(got, x)
    assert g.dtype == dtype and torch.isfinite(g.float()).all()


# --------------------------------------------------------------- ranking and distance


def test_top2_margin_is_zero_once_the_target_leads_by_the_margin():
    x = torch.tensor([[5.0, 3.9, 1.0], [5.0, 4.1, 1.0], [0.0, 0.0, 0.0]], dtype=D)
    y = torch.tensor([0, 0, 1])
    loss = L.top2_margin(x, y, margin=1.0, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.1, 1.0], dtype=D))
    sq = L.top2_margin(x, y, margin=1.0, reduction="none", p=2)
    torch.testing.assert_close(sq, loss**2)


def test_top2_margin_only_the_strongest_competitor_counts():
    """Unlike multi_margin_loss (a hinge per other class), raising a weak competitor that
    stays below the strongest one changes nothing."""
    x = torch.tensor([[2.0, 1.5, -3.0]], dtype=D)
    y = torch.tensor([0])
    before = L.top2_margin(x, y)
    after = L.top2_margin(torch.tensor([[2.0, 1.5, 1.4]], dtype=D), y)
    torch.testing.assert_close(before, after)
    assert not torch.allclose(
        F.multi_margin_loss(x, y), F.multi_margin_loss(torch.tensor([[2.0, 1.5, 1.4]], dtype=D), y)
    )


def test_distance_match_learns_scale_and_offset_that_separate_pairs():
    """On two well-separated clusters, fitting only scale and offset makes same-cluster pairs
    likely (p > 0.5) and cross-cluster pairs unlikely (p < 0.5)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 4, generator=g) * 0.3
    b = torch.randn(64, 4, generator=g) * 0.3 + 3.0
    x1 = torch.cat([a[:32], a[32:], a[:32]])
    x2 = torch.cat([a[32:], b[:32], b[32:]])
    same = torch.cat([torch.ones(32), torch.zeros(64)])
    loss_fn = L.DistanceMatchLoss(scale=0.1, offset=0.0)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        loss_fn(x1, x2, same).backward()
        opt.step()
    with torch.no_grad():
        p = loss_fn.probability(x1, x2)
    assert bool((p[:32] > 0.5).all()) and bool((p[32:] < 0.5).all())
    assert loss_fn.scale.item() > 0


def test_smooth_l1_tends_to_l1_as_beta_goes_to_zero():
    x, y = torch.randn(50, dtype=D), torch.randn(50, dtype=D)
    torch.testing.assert_close(L.smooth_l1(x, y, beta=0.0), L.l1(x, y))
    gap = [(L.smooth_l1(x, y, beta=b) - L.l1(x, y)).abs().item() for b in (1e-1, 1e-3, 1e-6)]
    assert gap[0] > gap[1] > gap[2] and gap[2] < 1e-6


@pytest.mark.parametrize("gamma", [0.0, 0.4, 2.0])
def test_sigmoid_focal_fast_path_equals_the_exact_path(gamma):
    """Finite logits on CPU take the closed-form Function; infinite ones the log-space
    autograd path. On the same finite inputs (soft labels, ignored elements, per-class α,
    weights) the two agree in value and gradient."""
    from mldl.losses.classification import _sigmoid_focal_exact

    x = (4 * torch.randn(6, 3, dtype=D)).requires_grad_()
    y = torch.rand(6, 3, dtype=D)
    y[0, 1] = -100.0  # ignored
    alpha = torch.tensor([0.2, 0.5, 0.9], dtype=D)
    w = torch.rand(6, 1, dtype=D)
    got = L.sigmoid_focal(x, y, gamma, alpha, w, reduction="none")
    kept = y != -100
    t = y.masked_fill(~kept, 0.0)
    coef = (alpha * t + (1 - alpha) * (1 - t)) * w * kept
    want = _sigmoid_focal_exact(x, t, gamma) * coef
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grad(got, x), _grad(want, x))
    mean = L.sigmoid_focal(x, y, gamma, alpha, w)
    torch.testing.assert_close(mean, want.sum() / kept.sum())


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_sigmoid_focal_function_gradcheck(gamma):
    from mldl.losses.classification import _SigmoidFocal

    x = torch.randn(4, 3, dtype=D, requires_grad=True)
    t = torch.rand(4, 3, dtype=D)
    t[0] = torch.tensor([0.0, 1.0, 1.0], dtype=D)  # hard labels too
    for coef in (None, torch.rand(4, 3, dtype=D)):
        assert torch.autograd.gradcheck(lambda z, c=coef: _SigmoidFocal.apply(z, t, c, gamma), (x,))
