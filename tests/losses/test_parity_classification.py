"""Classification losses: mldl == PyTorch native and mldl == the float64 reference.

nll, cross_entropy (class indices and probabilities, weights, ignore_index, label smoothing
in both conventions), bce, bce_with_logits (weight, pos_weight), softmax focal (== cross
entropy at gamma=0) and sigmoid focal (== bce_with_logits at gamma=0). Values and gradients,
every reduction, the (C,), (N, C) and (N, C, d1, d2) layouts, float32/float64, half smoke
checks, and the documented differences from PyTorch.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mldl import losses as L
from tests import reference as ref

from ._parity import (
    EXACT,
    FLOATS,
    HALF_VS_REF,
    HALVES,
    REDUCTIONS,
    REF,
    TIGHT,
    assert_runs_close,
    cast,
    check,
    dtype_id,
    one_thread,
    run,
    shape_id,
)

F64 = torch.float64
INF = math.inf

# Input shapes; the class dimension is 0 for 1-D input, else 1 (C = 4, 3, 3, 4, 3).
CLASS_SHAPES = [(4,), (1, 3), (5, 3), (2, 4, 3), (2, 3, 2, 3)]

class_shapes = pytest.mark.parametrize("shape", CLASS_SHAPES, ids=shape_id)
reductions = pytest.mark.parametrize("reduction", REDUCTIONS)
floats = pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
halves = pytest.mark.parametrize("dtype", HALVES, ids=dtype_id)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _case_id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()) or "default"


def _cdim(shape) -> int:
    return 0 if len(shape) == 1 else 1


def _logits(shape, dtype=F64):
    # Scaled so that no row could pass for probabilities (values outside [0, 1]).
    return 3 * torch.randn(shape, dtype=dtype)


def _indices(shape, ignore_index=None):
    """Class indices for an input of ``shape``. With ``ignore_index`` about a third of the
    items (and the last one) are ignored, never the first: an all-ignored batch's mean is
    0/0."""
    k = shape[_cdim(shape)]
    if len(shape) == 1:  # a single item
        return torch.tensor(2)
    t = torch.randint(0, k, (shape[0], *shape[2:]))
    if ignore_index is not None:
        flat = t.view(-1)
        flat[torch.rand(flat.shape) < 0.35] = ignore_index
        flat[-1] = ignore_index
        flat[0] = 2 if ignore_index == 0 else 0
    return t


def _probabilities(shape, dtype=F64):
    """Soft targets over the class dimension, one row one-hot and one with a zero entry."""
    t = torch.softmax(2 * torch.randn(shape, dtype=torch.float64), _cdim(shape))
    rows = t.movedim(_cdim(shape), -1).reshape(-1, shape[_cdim(shape)])
    rows[0] = 0.0
    rows[0, 1] = 1.0
    if rows.shape[0] > 1:
        rows[1, 0] = 0.0
        rows[1] /= rows[1].sum()
    back = rows.reshape(*t.movedim(_cdim(shape), -1).shape).movedim(-1, _cdim(shape))
    return back.to(dtype).contiguous()


def _dyadic_probabilities(shape):
    """Probability targets in eighths: exact in every float dtype, so rows sum to exactly 1
    in float16/bfloat16 too."""
    k = shape[_cdim(shape)]
    moved = (*shape[:1], *shape[2:], k) if len(shape) > 1 else (k,)
    rows = torch.randint(0, k, (math.prod(moved[:-1]), 8))
    q = F.one_hot(rows, k).sum(1).to(F64) / 8
    return q.reshape(moved).movedim(-1, _cdim(shape)).contiguous()


def _class_case(shape, case, dtype=F64, *, log_probs=False):
    """(inputs, kwargs) for a class-index loss: input, target, weight tensor if asked."""
    k = shape[_cdim(shape)]
    x = _logits(shape, dtype)
    if log_probs:
        x = torch.log_softmax(x, _cdim(shape))
    ignore = case.get("ignore_index")
    if case.get("probs") == "dyadic":
        inputs = {"input": x, "target": _dyadic_probabilities(shape).to(dtype)}
    elif case.get("probs"):
        inputs = {"input": x, "target": _probabilities(shape, dtype)}
    else:
        inputs = {"input": x, "target": _indices(shape, ignore)}
    if case.get("weight"):
        inputs["weight"] = torch.rand(k, dtype=dtype) + 0.2
    kwargs = {k_: v for k_, v in case.items() if k_ not in ("weight", "probs")}
    return inputs, kwargs


# ------------------------------------------------------------------------------------ nll

NLL_CASES = [
    {},
    {"weight": True},
    {"ignore_index": 1},
    {"ignore_index": -1},
    {"weight": True, "ignore_index": 1},
]
nll_cases = pytest.mark.parametrize("case", NLL_CASES, ids=_case_id)


@nll_cases
@class_shapes
@reductions
@floats
def test_nll_matches_native(case, shape, reduction, dtype):
    inputs, kw = _class_case(shape, case, dtype, log_probs=True)
    check(
        lambda **a: L.nll(**a, reduction=reduction, **kw),
        lambda **a: F.nll_loss(**a, reduction=reduction, **kw),
        inputs,
        ("input",),
        tol=EXACT,
    )


@nll_cases
@class_shapes
@reductions
def test_nll_matches_reference(case, shape, reduction):
    inputs, kw = _class_case(shape, case, log_probs=True)

    def reference(input, target, weight=None):
        loss, item_weight = ref.nll(input, target, weight, kw.get("ignore_index", -100))
        return ref.reduce(loss, reduction, item_weight)

    check(
        lambda **a: L.nll(**a, reduction=reduction, **kw),
        reference,
        inputs,
        ("input",),
        tol=REF,
    )


@halves
def test_nll_half_smoke(dtype):
    inputs, kw = _class_case((5, 3), {"weight": True, "ignore_index": 1}, log_probs=True)
    inputs = cast(inputs, dtype)
    got = check(
        lambda **a: L.nll(**a, **kw),
        lambda **a: F.nll_loss(**a, **kw),
        inputs,
        ("input",),
        tol=EXACT,
    )
    loss, w = ref.nll(inputs["input"], inputs["target"], inputs["weight"], 1)
    torch.testing.assert_close(got[0].double(), ref.reduce(loss, "mean", w), **HALF_VS_REF[dtype])


# ----------------------------------------------------------------------- cross_entropy

CE_INDEX_CASES = [
    {},
    {"weight": True},
    {"ignore_index": 1},
    {"weight": True, "ignore_index": -1},
    {"label_smoothing": 0.1},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.2},
]
CE_PROB_CASES = [
    {"probs": True},
    {"probs": True, "label_smoothing": 0.15},
    {"probs": True, "weight": True},
    {"probs": True, "weight": True, "label_smoothing": 0.15},
]
# 'others' smoothing, including ε > (K-1)/K (ε' > 1, mldl's extrapolated path; K = 3 or 4).
CE_OTHERS_CASES = [
    {"label_smoothing": 0.1, "smoothing": "others"},
    {"label_smoothing": 0.9, "smoothing": "others"},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.3, "smoothing": "others"},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.95, "smoothing": "others"},
    {"probs": True, "label_smoothing": 0.2, "smoothing": "others"},
    {"probs": True, "weight": True, "label_smoothing": 0.9, "smoothing": "others"},
]


def _ce_wrt(case):
    return ("input", "target") if case.get("probs") else ("input",)


def _ce_reference(reduction, kw):
    def reference(input, target, weight=None):
        loss, item_weight = ref.cross_entropy(
            input,
            target,
            weight,
            kw.get("ignore_index", -100),
            kw.get("label_smoothing", 0.0),
            kw.get("smoothing", "uniform"),
        )
        return ref.reduce(loss, reduction, item_weight)

    return reference


def _native_differs(case, reduction):
    """mldl's documented difference: probability targets + weight + 'mean'."""
    return case.get("probs") and case.get("weight") and reduction == "mean"


# (case, reduction) pairs where mldl follows PyTorch: all but the documented difference,
# which test_cross_entropy_prob_weight_mean_differs_from_native covers.
NATIVE_CE_PARAMS = [
    pytest.param(case, r, id=f"{r}-{_case_id(case)}")
    for case in CE_INDEX_CASES + CE_PROB_CASES
    for r in REDUCTIONS
    if not _native_differs(case, r)
]


@pytest.mark.parametrize(("case", "reduction"), NATIVE_CE_PARAMS)
@class_shapes
@floats
def test_cross_entropy_matches_native(case, reduction, shape, dtype):
    """Class indices run PyTorch's kernel (bitwise equal); probability targets run mldl's own
    0·log 0 = 0 form, equal up to rounding."""
    inputs, kw = _class_case(shape, case, dtype)
    check(
        lambda **a: L.cross_entropy(**a, reduction=reduction, **kw),
        lambda **a: F.cross_entropy(**a, reduction=reduction, **kw),
        inputs,
        _ce_wrt(case),
        tol=TIGHT[dtype] if case.get("probs") else EXACT,
    )


@pytest.mark.parametrize("case", CE_INDEX_CASES + CE_PROB_CASES + CE_OTHERS_CASES, ids=_case_id)
@class_shapes
@reductions
def test_cross_entropy_matches_reference(case, shape, reduction):
    inputs, kw = _class_case(shape, case)
    check(
        lambda **a: L.cross_entropy(**a, reduction=reduction, **kw),
        _ce_reference(reduction, kw),
        inputs,
        _ce_wrt(case),
        tol=REF,
    )


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3, 2)], ids=shape_id)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@floats
def test_cross_entropy_prob_weight_mean_differs_from_native(shape, smoothing, dtype):
    """Documented difference: with probability targets, a weight and 'mean', mldl divides by
    Σ_i Σ_c w_c t_ic; PyTorch divides by the number of items (pytorch #107680, #61309)."""
    inputs, _ = _class_case(shape, {"probs": True, "weight": True}, dtype)
    x, t, w = inputs["input"], inputs["target"], inputs["weight"]
    total = F.cross_entropy(x, t, w, reduction="sum", label_smoothing=smoothing)
    view = [1] * t.dim()
    view[1] = -1
    denominator = (t * w.view(view)).sum()
    got = L.cross_entropy(x, t, w, label_smoothing=smoothing)
    torch.testing.assert_close(got, total / denominator, **TIGHT[dtype])
    native = F.cross_entropy(x, t, w, label_smoothing=smoothing)
    torch.testing.assert_close(native, total / (t.numel() / t.shape[1]), **TIGHT[dtype])
    assert not torch.allclose(got, native)


@pytest.mark.parametrize("shape", [(4,), (6, 3), (2, 4, 3, 2)], ids=shape_id)
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize(
    ("eps", "smoothing"), [(0.0, "uniform"), (0.2, "uniform"), (0.2, "others"), (0.8, "others")]
)
@reductions
def test_cross_entropy_one_hot_probabilities_equal_indices(
    shape, weight, eps, smoothing, reduction
):
    """The docs: one-hot probability targets give the same loss as class indices (the reason
    for mldl's weighted-mean denominator), with or without weight and smoothing."""
    inputs, _ = _class_case(shape, {"weight": weight})
    k = shape[_cdim(shape)]
    one_hot = F.one_hot(inputs["target"], k).to(F64).movedim(-1, _cdim(shape))
    kw = {"reduction": reduction, "label_smoothing": eps, "smoothing": smoothing}
    check(
        lambda **a: L.cross_entropy(**a, **kw),
        lambda **a: L.cross_entropy(**{**a, "target": one_hot}, **kw),
        inputs,
        ("input",),
        tol=TIGHT[F64],
    )


@pytest.mark.parametrize("eps", [0.05, 0.3, 0.6])
@pytest.mark.parametrize("probs", [False, True])
@reductions
@floats
def test_cross_entropy_others_is_uniform_with_rescaled_epsilon(eps, probs, reduction, dtype):
    """The docs: 'others' with ε is PyTorch's uniform rule with ε' = εK/(K-1) (ε' <= 1)."""
    shape, k = (6, 4), 4
    inputs, _ = _class_case(shape, {"weight": not probs, "probs": probs}, dtype)
    check(
        lambda **a: L.cross_entropy(
            **a, reduction=reduction, label_smoothing=eps, smoothing="others"
        ),
        lambda **a: F.cross_entropy(**a, reduction=reduction, label_smoothing=eps * k / (k - 1)),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )


HALF_PROB_CASE = {"probs": "dyadic", "label_smoothing": 0.15}


@pytest.mark.parametrize("case", [CE_INDEX_CASES[5], HALF_PROB_CASE], ids=_case_id)
@halves
def test_cross_entropy_half_smoke(case, dtype):
    inputs, kw = _class_case((5, 3), case)
    inputs = cast(inputs, dtype)
    got = check(
        lambda **a: L.cross_entropy(**a, **kw),
        lambda **a: F.cross_entropy(**a, **kw),
        inputs,
        ("input",),
        tol=EXACT,
    )
    assert got[0].dtype == dtype
    check(
        lambda **a: L.cross_entropy(**a, **kw),
        _ce_reference("mean", kw),
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


def test_cross_entropy_probability_target_with_masked_logit():
    """Fixed bug, kept as a regression test.

    A -inf logit is a legitimate input (the LOGITS domain admits -inf, for masking), and a
    class with target probability 0 contributes 0 · log 0 = 0 to the notes' cross-entropy.
    mldl.cross_entropy used to pass the probability target to PyTorch, which computes
    -(0 · -inf) = NaN; mldl.focal(gamma=0), documented as "cross_entropy exactly", and the
    reference both give the finite value.
    """
    x = torch.tensor([[2.0, -INF, 0.5], [0.1, 0.2, 1.5]], dtype=F64)
    t = torch.tensor([[0.7, 0.0, 0.3], [0.2, 0.3, 0.5]], dtype=F64)
    loss, _ = ref.cross_entropy(x, t)
    want = ref.reduce(loss, "mean")
    assert torch.isfinite(want)
    torch.testing.assert_close(L.focal(x, t, gamma=0.0), want, **REF)
    torch.testing.assert_close(L.cross_entropy(x, t), want, **REF)


# -------------------------------------------------------------------------------------- bce

BINARY_SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4)]
binary_shapes = pytest.mark.parametrize("shape", BINARY_SHAPES, ids=shape_id)
WEIGHT_KINDS = ["none", "same", "last"]


def _weight(kind, shape, dtype):
    if kind == "none":
        return None
    wshape = shape if kind == "same" else shape[-1:]
    return torch.rand(wshape, dtype=dtype) + 0.2


def _bce_inputs(shape, weight_kind, dtype=F64):
    inputs = {
        "input": (0.02 + 0.96 * torch.rand(shape, dtype=F64)).to(dtype),
        "target": torch.rand(shape, dtype=dtype),
    }
    w = _weight(weight_kind, shape, dtype)
    if w is not None:
        inputs["weight"] = w
    return inputs


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@binary_shapes
@reductions
@floats
def test_bce_matches_native(weight_kind, shape, reduction, dtype):
    inputs = _bce_inputs(shape, weight_kind, dtype)
    check(
        lambda **a: L.bce(**a, reduction=reduction),
        lambda **a: F.binary_cross_entropy(**a, reduction=reduction),
        inputs,
        ("input", "target"),
        tol=EXACT,
    )


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@binary_shapes
@reductions
def test_bce_matches_reference(weight_kind, shape, reduction):
    check(
        lambda **a: L.bce(**a, reduction=reduction),
        lambda **a: ref.reduce(ref.bce(**a), reduction),
        _bce_inputs(shape, weight_kind),
        ("input", "target"),
        tol=REF,
    )


@floats
def test_bce_log_clamped_at_minus_100(dtype):
    """The docs: the log is clamped at -100, so saturated probabilities give 100, not inf."""
    x = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 1e-50], dtype=F64).to(dtype)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.5], dtype=dtype)
    got = L.bce(x, y, reduction="none")
    torch.testing.assert_close(got, ref.bce(x, y).to(dtype), **TIGHT[dtype])
    torch.testing.assert_close(got, F.binary_cross_entropy(x, y, reduction="none"), **EXACT)
    assert got[0] == 100 and got[1] == 100


@halves
def test_bce_half_smoke(dtype):
    inputs = cast(_bce_inputs((3, 5), "last"), dtype)
    got = check(
        lambda **a: L.bce(**a),
        lambda **a: F.binary_cross_entropy(**a),
        inputs,
        ("input",),
        tol=EXACT,
    )
    assert got[0].dtype == dtype
    check(
        lambda **a: L.bce(**a),
        lambda **a: ref.reduce(ref.bce(**a), "mean"),
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


# -------------------------------------------------------------------------- bce_with_logits

POS_WEIGHT_KINDS = ["none", "same", "last"]


def _bcel_inputs(shape, weight_kind, pos_weight_kind, dtype=F64):
    inputs = {"input": _logits(shape, dtype), "target": torch.rand(shape, dtype=dtype)}
    w = _weight(weight_kind, shape, dtype)
    if w is not None:
        inputs["weight"] = w
    pw = _weight(pos_weight_kind, shape, dtype)
    if pw is not None:
        inputs["pos_weight"] = 3 * pw
    return inputs


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@pytest.mark.parametrize("pos_weight_kind", POS_WEIGHT_KINDS)
@binary_shapes
@reductions
@floats
def test_bce_with_logits_matches_native(weight_kind, pos_weight_kind, shape, reduction, dtype):
    inputs = _bcel_inputs(shape, weight_kind, pos_weight_kind, dtype)
    check(
        lambda **a: L.bce_with_logits(**a, reduction=reduction),
        lambda **a: F.binary_cross_entropy_with_logits(**a, reduction=reduction),
        inputs,
        ("input", "target"),
        tol=EXACT,
    )


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@pytest.mark.parametrize("pos_weight_kind", POS_WEIGHT_KINDS)
@binary_shapes
@reductions
def test_bce_with_logits_matches_reference(weight_kind, pos_weight_kind, shape, reduction):
    check(
        lambda **a: L.bce_with_logits(**a, reduction=reduction),
        lambda **a: ref.reduce(ref.bce_with_logits(**a), reduction),
        _bcel_inputs(shape, weight_kind, pos_weight_kind),
        ("input", "target"),
        tol=REF,
    )


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@halves
def test_bce_with_logits_half_smoke(weight_kind, dtype):
    inputs = cast(_bcel_inputs((3, 5), weight_kind, "last"), dtype)
    check(
        lambda **a: L.bce_with_logits(**a),
        lambda **a: F.binary_cross_entropy_with_logits(**a),
        inputs,
        ("input", "target"),
        tol=EXACT,
    )
    check(
        lambda **a: L.bce_with_logits(**a),
        lambda **a: ref.reduce(ref.bce_with_logits(**a), "mean"),
        inputs,
        ("input", "target"),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


def _infinite_logit_case(dtype):
    """Every sign/label combination at ±inf, with zero pos_weight and zero weight cases, plus
    finite logits: limits 0 where the label agrees with the sign (or its term has zero
    weight), +inf where not."""
    x = torch.tensor(
        [INF, -INF, INF, -INF, INF, -INF, -INF, INF, 1.5, -0.7, 2.0, -3.0], dtype=dtype
    )
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.6, 1.0, 0.0, 1.0, 0.0, 0.4, 1.0], dtype=dtype)
    pw = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 1.0, 2.0, 1.0, 1.0, 0.5], dtype=dtype)
    w = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.5, 1.0, 1.0], dtype=dtype)
    return x, y, pw, w


@reductions
@floats
def test_bce_with_logits_exact_at_infinite_logits(reduction, dtype):
    """Documented difference: finite and exact at ±inf where PyTorch gives NaN
    (pytorch #49844, #102894, #135359)."""
    x, y, pw, w = _infinite_logit_case(dtype)
    got = L.bce_with_logits(x, y, w, reduction, pw)
    want = ref.reduce(ref.bce_with_logits(x, y, w, pw), reduction)
    torch.testing.assert_close(got, want.to(dtype), **TIGHT[dtype])
    if reduction == "none":
        expected_inf = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
        assert torch.equal(torch.isposinf(got), expected_inf)
        native = F.binary_cross_entropy_with_logits(x, y, w, reduction="none", pos_weight=pw)
        assert native[torch.isinf(x)].isnan().any()
        fin = torch.isfinite(x)
        torch.testing.assert_close(got[fin], native[fin], **EXACT)


@floats
def test_bce_with_logits_gradient_at_infinite_logits(dtype):
    """The docs: the gradient at an infinite logit is 0; at finite logits it is PyTorch's."""
    x, y, pw, w = _infinite_logit_case(dtype)
    keep = torch.isfinite(x) | (ref.bce_with_logits(x, y, w, pw) == 0)  # a finite total
    x, y, pw, w = x[keep], y[keep], pw[keep], w[keep]
    fin = torch.isfinite(x)
    for reduction, scale in (("sum", 1.0), ("mean", 1.0 / x.numel())):
        xg = x.clone().requires_grad_()
        loss = L.bce_with_logits(xg, y, w, reduction, pw)
        assert torch.isfinite(loss)
        (g,) = torch.autograd.grad(loss, xg)
        assert torch.equal(g[~fin], torch.zeros_like(g[~fin]))
        xf = x[fin].clone().requires_grad_()
        native = F.binary_cross_entropy_with_logits(
            xf, y[fin], w[fin], reduction="sum", pos_weight=pw[fin]
        )
        (g_native,) = torch.autograd.grad(native, xf)
        torch.testing.assert_close(g[fin], g_native * scale, **TIGHT[dtype])


# ---------------------------------------------------------------------------- softmax focal

FOCAL_REF_CASES = [
    {},
    {"weight": True},
    {"ignore_index": 1},
    {"alpha": 0.25},
    {"alpha": "per-class"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "smoothing": "others"},
    {"weight": True, "ignore_index": 1, "alpha": "per-class", "label_smoothing": 0.1},
    {"probs": True},
    {"probs": True, "weight": True},
    {"probs": True, "weight": True, "alpha": 0.5, "label_smoothing": 0.2, "smoothing": "others"},
]


def _focal_case(shape, case, dtype=F64):
    inputs, kw = _class_case(shape, case, dtype)
    if kw.get("alpha") == "per-class":
        kw["alpha"] = torch.rand(shape[_cdim(shape)], dtype=dtype) + 0.1
    return inputs, kw


@pytest.mark.parametrize(("case", "reduction"), NATIVE_CE_PARAMS)
@class_shapes
@floats
def test_focal_gamma_zero_matches_native_cross_entropy(case, reduction, shape, dtype):
    """The docs: gamma=0 with alpha=None is cross_entropy (PyTorch's, outside the documented
    probability-target + weight + 'mean' difference), values and gradients."""
    inputs, kw = _class_case(shape, case, dtype)
    check(
        lambda **a: L.focal(**a, gamma=0.0, reduction=reduction, **kw),
        lambda **a: F.cross_entropy(**a, reduction=reduction, **kw),
        inputs,
        _ce_wrt(case),
        tol=TIGHT[dtype],
    )


@pytest.mark.parametrize("case", FOCAL_REF_CASES, ids=_case_id)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@class_shapes
@reductions
def test_focal_matches_reference(case, gamma, shape, reduction):
    inputs, kw = _focal_case(shape, case)

    def reference(input, target, weight=None):
        loss, item_weight = ref.focal(
            input,
            target,
            gamma,
            kw.get("alpha"),
            weight,
            kw.get("ignore_index", -100),
            kw.get("label_smoothing", 0.0),
            kw.get("smoothing", "uniform"),
        )
        return ref.reduce(loss, reduction, item_weight)

    check(
        lambda **a: L.focal(**a, gamma=gamma, reduction=reduction, **kw),
        reference,
        inputs,
        _ce_wrt(case),
        tol=REF,
    )


@pytest.mark.parametrize(
    "case", [{"weight": True, "ignore_index": 1}, HALF_PROB_CASE], ids=_case_id
)
@halves
def test_focal_half_smoke(case, dtype):
    inputs, kw = _class_case((6, 3), case)
    inputs = cast(inputs, dtype)
    got = check(
        lambda **a: L.focal(**a, gamma=0.0, **kw),
        lambda **a: F.cross_entropy(**a, **kw),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )
    assert got[0].dtype == dtype

    def reference(input, target, weight=None):
        loss, w = ref.focal(input, target, 2.0, None, weight, kw.get("ignore_index", -100))
        return ref.reduce(loss, "mean", w)

    check(
        lambda **a: L.focal(**a, gamma=2.0, **kw),
        reference,
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


# ---------------------------------------------------------------------------- sigmoid focal

SIGMOID_FOCAL_CASES = [
    {},
    {"alpha": 0.25},
    {"alpha": "per-class"},
    {"weight": "last"},
    {"ignore": True},
    {"alpha": 0.25, "weight": "same", "ignore": True},
]


def _sigmoid_focal_case(shape, case, dtype=F64):
    inputs = {"input": _logits(shape, dtype), "target": torch.rand(shape, dtype=dtype)}
    flat = inputs["target"].view(-1)
    flat[::3] = torch.round(flat[::3])  # hard labels among the soft ones
    kw = {}
    if case.get("ignore"):
        flat[1::4] = -100.0
    if case.get("weight"):
        inputs["weight"] = _weight(case["weight"], shape, dtype)
    if case.get("alpha") == "per-class":
        kw["alpha"] = torch.rand(shape[-1:], dtype=dtype)
    elif "alpha" in case:
        kw["alpha"] = case["alpha"]
    return inputs, kw


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@binary_shapes
@reductions
@floats
def test_sigmoid_focal_gamma_zero_matches_native_bce_with_logits(
    weight_kind, shape, reduction, dtype
):
    """The docs: gamma=0 with alpha=None is bce_with_logits exactly."""
    inputs = _bcel_inputs(shape, weight_kind, "none", dtype)
    check(
        lambda **a: L.sigmoid_focal(**a, gamma=0.0, reduction=reduction),
        lambda **a: F.binary_cross_entropy_with_logits(**a, reduction=reduction),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )


@pytest.mark.parametrize("case", SIGMOID_FOCAL_CASES, ids=_case_id)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4)], ids=shape_id)
@reductions
def test_sigmoid_focal_matches_reference(case, gamma, shape, reduction):
    inputs, kw = _sigmoid_focal_case(shape, case)

    def reference(input, target, weight=None):
        loss, kept = ref.sigmoid_focal(input, target, gamma, kw.get("alpha"), weight)
        return ref.reduce(loss, reduction, kept)

    check(
        lambda **a: L.sigmoid_focal(**a, gamma=gamma, reduction=reduction, **kw),
        reference,
        inputs,
        ("input",),
        tol=REF,
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@reductions
def test_sigmoid_focal_at_infinite_logits(gamma, reduction):
    """The docs: even infinite logits give the formula's limits (0 or +inf), never NaN."""
    x = torch.tensor([INF, -INF, INF, -INF, INF, -INF, 0.3], dtype=F64)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.4, 0.7, 1.0], dtype=F64)
    loss, kept = ref.sigmoid_focal(x, y, gamma, 0.25)
    got = L.sigmoid_focal(x, y, gamma, 0.25, reduction=reduction)
    torch.testing.assert_close(got, ref.reduce(loss, reduction, kept), **REF)
    assert not got.isnan().any()


@pytest.mark.parametrize("case", [SIGMOID_FOCAL_CASES[0], SIGMOID_FOCAL_CASES[5]], ids=_case_id)
@halves
def test_sigmoid_focal_half_smoke(case, dtype):
    inputs, kw = _sigmoid_focal_case((4, 5), case)
    inputs = cast(inputs, dtype)

    def reference(input, target, weight=None):
        loss, kept = ref.sigmoid_focal(input, target, 2.0, kw.get("alpha"), weight)
        return ref.reduce(loss, "mean", kept)

    got = check(
        lambda **a: L.sigmoid_focal(**a, gamma=2.0, **kw),
        reference,
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )
    assert got[0].dtype == dtype
    if not case:
        assert_runs_close(
            run(lambda **a: L.sigmoid_focal(**a, gamma=0.0), inputs, ("input",)),
            run(lambda **a: F.binary_cross_entropy_with_logits(**a), inputs, ("input",)),
            **TIGHT[dtype],
        )
