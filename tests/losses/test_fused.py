"""The fused cross-entropy (``mldl.losses.fused``): values and gradients against PyTorch, the
float64 reference and the notes' OpenNMT snippet; gradcheck of both custom Functions; the
linear + cross-entropy fusion against ``F.cross_entropy(F.linear(...))``; the in-place
backward's contract; half precision; ``cross_entropy``'s dispatch to the fused path.

Every expected value comes from PyTorch, ``tests/reference.py`` or ``tests/notes_snippets.py``
(or a float64 autograd formula written here from the module docstring), never from the code
under test. The last section holds regression tests for the library bugs found while
writing this file (each docstring says what used to happen).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

import mldl
from mldl import losses as L
from mldl.losses import fused
from tests import notes_snippets as notes
from tests import reference as ref

from ._parity import (
    EXACT,
    FLOATS,
    HALVES,
    REDUCTIONS,
    REF,
    TIGHT,
    check,
    dtype_id,
    one_thread,
    run,
)

F64 = torch.float64
K = 37  # a number of classes that is a multiple of nothing useful

# The fused loss computes lse as max - log(max softmax) and sums in its own order: a few
# float32 ulps from PyTorch's kernel. The linear fusion also sums the matmuls by chunks.
FUSED_TOL = {F64: TIGHT[F64], torch.float32: {"rtol": 1e-5, "atol": 1e-6}}
LINEAR_TOL = {F64: TIGHT[F64], torch.float32: {"rtol": 2e-5, "atol": 2e-5}}
# Against the float64 reference (a different formula, float64 throughout).
VS_REF = {F64: REF, torch.float32: {"rtol": 2e-5, "atol": 2e-5}}

reductions = pytest.mark.parametrize("reduction", REDUCTIONS)
floats = pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
halves = pytest.mark.parametrize("dtype", HALVES, ids=dtype_id)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _case_id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()) or "default"


def _logits(shape, dtype=F64, scale: float = 3.0) -> torch.Tensor:
    return (scale * torch.randn(shape, dtype=F64)).to(dtype)


def _targets(shape, k: int, ignore_index: int | None = None) -> torch.Tensor:
    """Random class indices; with ``ignore_index``, every third item from the second on is
    ignored (the first item is always kept, so a batch is never all ignored)."""
    y = torch.randint(0, k, shape)
    if ignore_index is not None:
        y.view(-1)[1::3] = ignore_index
        if y.view(-1)[0] == ignore_index:  # a real class drawn as the first item
            y.view(-1)[0] = (ignore_index + 1) % k
    return y


def _class_weight(k: int, dtype=F64) -> torch.Tensor:
    return (torch.rand(k, dtype=F64) + 0.5).to(dtype)


def _snippet(label_smoothing: float, k: int, pad: int) -> torch.nn.Module:
    """The notes' third snippet (OpenNMT-py), its buffer built in float64."""
    torch.set_default_dtype(F64)
    try:
        return notes.OpenNMTLabelSmoothingLoss(label_smoothing, k, ignore_index=pad)
    finally:
        torch.set_default_dtype(torch.float32)


def _reference(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> torch.Tensor:
    """The fused loss as the module docstring defines it, in float64 autograd: logits
    soft-capped as c·tanh(x/c); per item the reference cross-entropy (uniform / others) or
    the notes' OpenNMT snippet (opennmt: KL, padded items 0); plus λ·lse² on kept items;
    reduced by PyTorch's rule (opennmt's mean: over kept items)."""
    x = input.to(F64)
    k = x.shape[1]
    z = x if softcap is None else softcap * torch.tanh(x / softcap)
    rows = z.movedim(1, -1).reshape(-1, k)
    t = target.reshape(-1)
    kept = t != ignore_index
    if smoothing == "opennmt":
        snippet = _snippet(label_smoothing, k, ignore_index)
        logp = F.log_softmax(rows, -1)
        loss = torch.stack([snippet(logp[i : i + 1], t[i : i + 1]) for i in range(t.numel())])
        item_weight = kept.to(F64)
    else:
        loss, item_weight = ref.cross_entropy(
            rows, t, weight, ignore_index, label_smoothing, smoothing
        )
    if z_loss:
        loss = loss + z_loss * torch.logsumexp(rows, 1) ** 2 * kept
    return ref.reduce(loss.reshape(target.shape), reduction, item_weight.reshape(target.shape))


# ------------------------------------------------------------- parity with F.cross_entropy

PT_CASES = [
    {},
    {"weight": True},
    {"ignore_index": -100},
    {"ignore_index": 4},  # a real class as ignore_index
    {"label_smoothing": 0.2},
    {"weight": True, "ignore_index": 4, "label_smoothing": 0.3},
    {"weight": True, "ignore_index": -100, "label_smoothing": 1.0},
]
# (input shape, chunk_rows): N=1; several chunks of 3 rows, the last one short (10 = 3+3+3+1);
# the default chunking; the (N, K, d1) layout (12 items in chunks of 5).
LAYOUTS = [((1, K), None), ((10, K), 3), ((10, K), None), ((4, K, 3), 5)]


def _pt_case(shape, case: dict, dtype):
    ignore_index = case.get("ignore_index")
    y = _targets((shape[0], *shape[2:]), shape[1], ignore_index)
    inputs = {"input": _logits(shape, dtype), "target": y}
    inputs["weight"] = _class_weight(shape[1], dtype) if case.get("weight") else None
    kwargs = {k: v for k, v in case.items() if k != "weight"}
    return inputs, kwargs


@pytest.mark.parametrize("case", PT_CASES, ids=_case_id)
@pytest.mark.parametrize(("shape", "chunk_rows"), LAYOUTS, ids=lambda v: str(v))
@reductions
@floats
def test_matches_pytorch(case, shape, chunk_rows, reduction, dtype):
    inputs, kw = _pt_case(shape, case, dtype)
    check(
        lambda **a: L.fused_cross_entropy(**a, reduction=reduction, chunk_rows=chunk_rows, **kw),
        lambda **a: F.cross_entropy(**a, reduction=reduction, **kw),
        inputs,
        ("input",),
        tol=FUSED_TOL[dtype],
    )


@reductions
def test_matches_pytorch_on_non_contiguous_logits(reduction):
    """(N, K) logits that are the transpose of a (K, N) tensor: rows are strided."""
    x = _logits((K, 10), torch.float32).t()
    assert not x.is_contiguous()
    y, w = _targets((10,), K, -100), _class_weight(K, torch.float32)
    kw = {"ignore_index": -100, "label_smoothing": 0.1, "reduction": reduction}
    check(
        lambda input: L.fused_cross_entropy(input, y, w, chunk_rows=4, **kw),
        lambda input: F.cross_entropy(input, y, w, **kw),
        {"input": x},
        ("input",),
        tol=FUSED_TOL[torch.float32],
    )


@floats
def test_matches_pytorch_at_large_logits(dtype):
    """Logits in the thousands: the lse is computed stably (no overflow, no NaN)."""
    x, y = _logits((6, K), dtype, scale=1000.0), _targets((6,), K)
    got = check(
        lambda input: L.fused_cross_entropy(input, y, label_smoothing=0.1, chunk_rows=4),
        lambda input: F.cross_entropy(input, y, label_smoothing=0.1),
        {"input": x},
        ("input",),
        tol=FUSED_TOL[dtype],
    )
    assert math.isfinite(got[0].item())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_masked_logits_match_pytorch(label_smoothing):
    """-inf logits (masked classes) are accepted: no smoothing gives PyTorch's finite loss
    and zero gradient there; smoothing puts mass on them, so the loss is +inf as PyTorch's."""
    x, y = _logits((5, K)), _targets((5,), K - 3)
    x[:, -3:] = -math.inf
    got = check(
        lambda input: L.fused_cross_entropy(input, y, label_smoothing=label_smoothing),
        lambda input: F.cross_entropy(input, y, label_smoothing=label_smoothing),
        {"input": x},
        ("input",),
        tol=FUSED_TOL[F64],
    )
    assert math.isfinite(got[0].item()) == (label_smoothing == 0.0)


@reductions
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_all_rows_ignored_value(reduction, label_smoothing):
    """Every item ignored: 'mean' is 0/0 = NaN, 'sum' 0, 'none' zeros, as PyTorch."""
    x, y = _logits((5, K)), torch.full((5,), -100)
    want = F.cross_entropy(x, y, reduction=reduction, label_smoothing=label_smoothing)
    got = L.fused_cross_entropy(x, y, reduction=reduction, label_smoothing=label_smoothing)
    torch.testing.assert_close(got, want, equal_nan=True, **EXACT)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_all_rows_ignored_gradient_is_zero(reduction):
    x, y = _logits((5, K)).requires_grad_(), torch.full((5,), -100)
    (g,) = torch.autograd.grad(L.fused_cross_entropy(x, y, reduction=reduction).sum(), x)
    torch.testing.assert_close(g, torch.zeros_like(x), **EXACT)


# --------------------------------------------------------------- smoothing 'others', 'opennmt'


@pytest.mark.parametrize(("k", "eps"), [(K, 0.1), (3, 0.9), (2, 0.5)], ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@reductions
@floats
def test_others_matches_cross_entropy(k, eps, weighted, reduction, dtype):
    """'others' (ε/(K-1) to each other class) equals mldl.cross_entropy's; K=3, ε=0.9 is
    beyond (K-1)/K, where cross_entropy extrapolates."""
    x, y = _logits((9, k), dtype), _targets((9,), k, -100)
    w = _class_weight(k, dtype) if weighted else None
    kw = {"label_smoothing": eps, "smoothing": "others", "reduction": reduction}
    check(
        lambda input: L.fused_cross_entropy(input, y, w, chunk_rows=2, **kw),
        lambda input: L.cross_entropy(input, y, w, **kw),
        {"input": x},
        ("input",),
        tol=FUSED_TOL[dtype],
    )


@pytest.mark.parametrize(("k", "eps"), [(K, 0.1), (3, 0.9), (2, 0.5)], ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@reductions
def test_others_matches_reference(k, eps, weighted, reduction):
    x, y = _logits((9, k)), _targets((9,), k, -100)
    w = _class_weight(k) if weighted else None

    def reference(input):
        loss, item_weight = ref.cross_entropy(input, y, w, -100, eps, "others")
        return ref.reduce(loss, reduction, item_weight)

    check(
        lambda input: L.fused_cross_entropy(
            input, y, w, reduction=reduction, label_smoothing=eps, smoothing="others"
        ),
        reference,
        {"input": x},
        ("input",),
        tol=REF,
    )


@pytest.mark.parametrize(
    ("k", "pad", "eps"), [(K, 0, 0.1), (6, 3, 0.4), (4, 1, 1.0), (3, 2, 0.2)], ids=str
)
@pytest.mark.parametrize("softcap", [None, 2.0])
@reductions
def test_opennmt_matches_the_third_snippet(k, pad, eps, softcap, reduction):
    """The notes' OpenNMT snippet on log_softmax(logits), with a real padding index: 'sum'
    is the snippet's value, 'mean' divides it by the number of non-padding items, 'none'
    is the snippet applied to each item alone."""
    n = 11
    x, y = _logits((n, k)), torch.randint(0, k, (n,))
    y[[1, 4, 5]] = pad
    snippet = _snippet(eps, k, pad)

    def want(input):
        z = input if softcap is None else softcap * torch.tanh(input / softcap)
        logp = F.log_softmax(z, -1)
        if reduction == "none":
            return torch.stack([snippet(logp[i : i + 1], y[i : i + 1]) for i in range(n)])
        total = snippet(logp, y)
        return total if reduction == "sum" else total / (y != pad).sum()

    check(
        lambda input: L.fused_cross_entropy(
            input,
            y,
            ignore_index=pad,
            reduction=reduction,
            label_smoothing=eps,
            smoothing="opennmt",
            softcap=softcap,
            chunk_rows=4,
        ),
        want,
        {"input": x},
        ("input",),
        tol=REF,
    )


def test_opennmt_at_zero_smoothing_is_cross_entropy():
    """ε = 0: OpenNMT's target is one-hot (entropy 0), so the KL is the plain cross-entropy
    with the padding class ignored."""
    x, y = _logits((7, 6)), torch.tensor([0, 1, 2, 3, 4, 5, 2])
    kw = {"ignore_index": 2, "reduction": "sum"}
    check(
        lambda input: L.fused_cross_entropy(input, y, smoothing="opennmt", **kw),
        lambda input: F.cross_entropy(input, y, **kw),
        {"input": x},
        ("input",),
        tol=REF,
    )


# ------------------------------------------------------------------------- z-loss, soft-cap

EXTRA_CASES = [
    {},
    {"weight": True, "ignore_index": -100, "label_smoothing": 0.1},
    {"ignore_index": 2, "label_smoothing": 0.3, "smoothing": "others"},
    {"ignore_index": 0, "label_smoothing": 0.2, "smoothing": "opennmt"},
]


def _extra_case(case: dict, dtype, shape=(10, K)):
    y = _targets((shape[0], *shape[2:]), shape[1], case.get("ignore_index"))
    w = _class_weight(shape[1], dtype) if case.get("weight") else None
    kwargs = {k: v for k, v in case.items() if k != "weight"}
    return _logits(shape, dtype), y, w, kwargs


@pytest.mark.parametrize("case", EXTRA_CASES, ids=_case_id)
@pytest.mark.parametrize("softcap", [None, 2.5])
@reductions
@floats
def test_z_loss_matches_formula(case, softcap, reduction, dtype):
    """CE + λ·logsumexp(z)² per kept item (unweighted), 'mean' over the CE's denominator."""
    x, y, w, kw = _extra_case(case, dtype)
    opts = dict(kw, reduction=reduction, z_loss=0.1, softcap=softcap)
    check(
        lambda input: L.fused_cross_entropy(input, y, w, chunk_rows=3, **opts),
        lambda input: _reference(input, y, w, **opts),
        {"input": x},
        ("input",),
        tol=VS_REF[dtype],
        check_dtype=False,
    )


@pytest.mark.parametrize(
    "case", [c for c in PT_CASES if c.get("label_smoothing", 0) < 1], ids=_case_id
)
@pytest.mark.parametrize("softcap", [0.5, 2.0, 30.0])
@reductions
@floats
def test_softcap_matches_autograd_of_capped_logits(case, softcap, reduction, dtype):
    """softcap=c is F.cross_entropy(c·tanh(x/c)) with autograd through the tanh."""
    inputs, kw = _pt_case((10, K), case, dtype)
    check(
        lambda **a: L.fused_cross_entropy(
            **a, reduction=reduction, softcap=softcap, chunk_rows=3, **kw
        ),
        lambda input, **a: F.cross_entropy(
            softcap * torch.tanh(input / softcap), **a, reduction=reduction, **kw
        ),
        inputs,
        ("input",),
        tol=FUSED_TOL[dtype],
    )


def test_z_loss_and_softcap_change_the_loss():
    """Guard for the two tests above: the options are not no-ops at these sizes."""
    x, y = _logits((10, K)), _targets((10,), K)
    plain = L.fused_cross_entropy(x, y)
    assert (L.fused_cross_entropy(x, y, z_loss=0.1) - plain).item() > 0.1
    assert abs((L.fused_cross_entropy(x, y, softcap=2.5) - plain).item()) > 0.1


# -------------------------------------------------------------------------------- gradcheck

GRADCHECK_CASES = [
    {},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.2},
    {"label_smoothing": 0.3, "smoothing": "others", "ignore_index": -100},
    {"label_smoothing": 0.2, "smoothing": "opennmt", "ignore_index": 0},
    {"z_loss": 0.1, "softcap": 2.0},
    {"weight": True, "ignore_index": -100, "label_smoothing": 0.1, "z_loss": 0.05, "softcap": 3.0},
]


def _gradcheck_case(case: dict, n: int, k: int, item_shape=()):
    y = torch.randint(0, k, (n, *item_shape))
    if "ignore_index" in case:
        y.view(-1)[1] = case["ignore_index"]
    w = torch.rand(k, dtype=F64) + 0.5 if case.get("weight") else None
    return y, w, {k_: v for k_, v in case.items() if k_ != "weight"}


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=_case_id)
@reductions
def test_fused_gradcheck(case, reduction):
    y, w, kw = _gradcheck_case(case, 5, 6)
    x = _logits((5, 6)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: L.fused_cross_entropy(z, y, w, reduction=reduction, chunk_rows=2, **kw), (x,)
    )


@reductions
def test_fused_gradcheck_nd_layout(reduction):
    case = GRADCHECK_CASES[-1]
    y, w, kw = _gradcheck_case(case, 2, 5, (3,))
    x = _logits((2, 5, 3)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: L.fused_cross_entropy(z, y, w, reduction=reduction, chunk_rows=4, **kw), (x,)
    )


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=_case_id)
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@reductions
def test_linear_gradcheck(case, bias, reduction):
    y, w, kw = _gradcheck_case(case, 5, 6)
    h = torch.randn(5, 3, dtype=F64, requires_grad=True)
    weight = torch.randn(6, 3, dtype=F64, requires_grad=True)
    inputs = (h, weight) + ((torch.randn(6, dtype=F64, requires_grad=True),) if bias else ())

    def f(hidden, weight, bias=None):
        return L.linear_cross_entropy(
            hidden, weight, y, bias, class_weight=w, reduction=reduction, chunk_rows=2, **kw
        )

    assert torch.autograd.gradcheck(f, inputs)


# ------------------------------------------------------------------ linear + cross-entropy

LINEAR_CASES = [
    {},
    {"class_weight": True, "ignore_index": -100, "label_smoothing": 0.2},
    {"ignore_index": 3},
]
# (hidden shape, chunk_rows): chunks smaller than N with a short last one; (B, T, H) hidden;
# a single token with the default chunking.
LINEAR_LAYOUTS = [((10, 8), 3), ((2, 5, 8), 4), ((1, 8), None)]


def _linear_case(hshape, case: dict, dtype, bias: bool, v: int = K):
    h = hshape[-1]
    inputs = {
        "hidden": _logits(hshape, dtype, scale=1.0),
        "weight": _logits((v, h), dtype, scale=1.0),
        "target": _targets(hshape[:-1], v, case.get("ignore_index")),
    }
    if bias:
        inputs["bias"] = _logits((v,), dtype, scale=1.0)
    cw = _class_weight(v, dtype) if case.get("class_weight") else None
    kwargs = {k: val for k, val in case.items() if k != "class_weight"}
    return inputs, cw, kwargs


def _unfused(hidden, weight, target, bias=None, *, class_weight=None, reduction="mean", **kw):
    logits = F.linear(hidden, weight, bias)
    out = F.cross_entropy(
        logits.reshape(-1, weight.shape[0]),
        target.reshape(-1),
        class_weight,
        reduction=reduction,
        **kw,
    )
    return out.reshape(target.shape) if reduction == "none" else out


@pytest.mark.parametrize("case", LINEAR_CASES, ids=_case_id)
@pytest.mark.parametrize(("hshape", "chunk_rows"), LINEAR_LAYOUTS, ids=lambda v: str(v))
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@reductions
@floats
def test_linear_matches_unfused(case, hshape, chunk_rows, bias, reduction, dtype):
    inputs, cw, kw = _linear_case(hshape, case, dtype, bias)
    wrt = ("hidden", "weight", "bias") if bias else ("hidden", "weight")
    check(
        lambda **a: L.linear_cross_entropy(
            **a, class_weight=cw, reduction=reduction, chunk_rows=chunk_rows, **kw
        ),
        lambda **a: _unfused(**a, class_weight=cw, reduction=reduction, **kw),
        inputs,
        wrt,
        tol=LINEAR_TOL[dtype],
    )


@pytest.mark.parametrize("wrt", [("hidden",), ("weight",), ("weight", "bias"), ("bias",)], ids=str)
@reductions
def test_linear_gradients_of_a_subset(wrt, reduction):
    """Only some of hidden, weight, bias require grad (a frozen classifier, a frozen body)."""
    inputs, cw, kw = _linear_case((10, 8), LINEAR_CASES[1], F64, bias=True)
    check(
        lambda **a: L.linear_cross_entropy(
            **a, class_weight=cw, reduction=reduction, chunk_rows=3, **kw
        ),
        lambda **a: _unfused(**a, class_weight=cw, reduction=reduction, **kw),
        inputs,
        wrt,
        tol=LINEAR_TOL[F64],
    )


@pytest.mark.parametrize("case", EXTRA_CASES[2:], ids=_case_id)
@pytest.mark.parametrize("extra", [{}, {"z_loss": 0.1, "softcap": 2.5}], ids=_case_id)
@reductions
def test_linear_other_options_match_reference(case, extra, reduction):
    """'others', 'opennmt', z-loss and soft-cap through the linear fusion: the fused loss of
    F.linear's logits, by the float64 reference."""
    inputs, _, kw = _linear_case((2, 5, 8), case, F64, bias=True)
    opts = dict(kw, reduction=reduction, **extra)

    def reference(hidden, weight, target, bias):
        logits = F.linear(hidden, weight, bias).reshape(-1, weight.shape[0])
        out = _reference(logits, target.reshape(-1), **opts)
        return out.reshape(target.shape) if reduction == "none" else out

    check(
        lambda **a: L.linear_cross_entropy(**a, chunk_rows=3, **opts),
        reference,
        inputs,
        ("hidden", "weight", "bias"),
        tol=REF,
    )


@reductions
def test_linear_all_rows_ignored_value(reduction):
    inputs, _, _ = _linear_case((4, 8), {}, F64, bias=True)
    inputs["target"] = torch.full((4,), -100)
    want = _unfused(**inputs, reduction=reduction)
    got = L.linear_cross_entropy(**inputs, reduction=reduction)
    torch.testing.assert_close(got, want, equal_nan=True, **EXACT)


# ------------------------------------------------------------------------ inplace_backward


def _linear_logits_case(dtype=torch.float32, n=10, h=8):
    hidden = _logits((n, h), dtype, scale=1.0).requires_grad_()
    weight = _logits((K, h), dtype, scale=1.0).requires_grad_()
    return hidden, weight, _targets((n,), K, -100)


@pytest.mark.parametrize(
    "kw",
    [{}, {"label_smoothing": 0.1, "z_loss": 0.01}, {"softcap": 2.0, "label_smoothing": 0.2}],
    ids=_case_id,
)
@reductions
@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16], ids=dtype_id)
def test_inplace_backward_gives_the_same_gradient(kw, reduction, dtype):
    """Logits from a matmul (whose backward saves its inputs, not the logits): the gradients
    through the overwritten logits equal the out-of-place version's."""
    hidden, weight, y = _linear_logits_case(dtype)

    def loss(hidden, weight, inplace):
        return L.fused_cross_entropy(
            hidden @ weight.t(),
            y,
            reduction=reduction,
            inplace_backward=inplace,
            chunk_rows=3,
            **kw,
        )

    check(
        lambda **a: loss(**a, inplace=True),
        lambda **a: loss(**a, inplace=False),
        {"hidden": hidden, "weight": weight},
        ("hidden", "weight"),
        tol=TIGHT[dtype],
    )


def test_inplace_backward_gradient_matches_pytorch():
    hidden, weight, y = _linear_logits_case()
    loss = L.fused_cross_entropy(hidden @ weight.t(), y, inplace_backward=True, chunk_rows=3)
    loss.backward()
    h2, w2 = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    F.cross_entropy(h2 @ w2.t(), y).backward()
    torch.testing.assert_close(hidden.grad, h2.grad, **LINEAR_TOL[torch.float32])
    torch.testing.assert_close(weight.grad, w2.grad, **LINEAR_TOL[torch.float32])


@reductions
def test_inplace_backward_overwrites_the_logits_with_the_gradient(reduction):
    """Documented: the gradient is written over the input. After the forward the logits
    hold d(loss)/d(logits) (for 'none', of the sum of the items)."""
    x = _logits((6, K), torch.float32).requires_grad_()
    y, w = _targets((6,), K, -100), _class_weight(K, torch.float32)
    kw = {"reduction": reduction, "label_smoothing": 0.1, "ignore_index": -100}
    x_ref = x.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(F.cross_entropy(x_ref, y, w, **kw).sum(), x_ref)
    logits = x * 1.0  # a non-leaf whose backward saves nothing of it
    L.fused_cross_entropy(logits, y, w, inplace_backward=True, **kw)
    torch.testing.assert_close(logits.detach(), want, **FUSED_TOL[torch.float32])


def test_inplace_backward_on_a_leaf():
    """The logits themselves a leaf: the leaf is overwritten, its .grad is right."""
    x, y = _logits((6, K), torch.float32).requires_grad_(), _targets((6,), K)
    x_ref = x.detach().clone().requires_grad_()
    F.cross_entropy(x_ref, y).backward()
    L.fused_cross_entropy(x, y, inplace_backward=True).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **FUSED_TOL[torch.float32])


def test_inplace_backward_second_backward_raises():
    hidden, weight, y = _linear_logits_case()
    loss = L.fused_cross_entropy(hidden @ weight.t(), y, inplace_backward=True)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match=r"^fused_cross_entropy: .*inplace_backward"):
        loss.backward()


def test_inplace_backward_raises_when_another_op_saved_the_logits():
    """exp saves its output for its backward: overwriting it must not give a silently wrong
    gradient; autograd's version check raises."""
    leaf, y = _logits((6, K), torch.float32).requires_grad_(), _targets((6,), K)
    logits = leaf.exp()
    loss = L.fused_cross_entropy(logits, y, inplace_backward=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_out_of_place_backward_can_run_again():
    """Without inplace_backward the gradient buffer is never scaled in place: repeated
    backward passes (retain_graph, with and without a scale) accumulate correctly."""
    x, y = _logits((6, K)).requires_grad_(), _targets((6,), K, -100)
    loss = L.fused_cross_entropy(x, y, label_smoothing=0.1)
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    (loss * 2.0).backward(retain_graph=True)
    (loss * 2.0).backward()
    x_ref = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(F.cross_entropy(x_ref, y, label_smoothing=0.1), x_ref)
    torch.testing.assert_close(x.grad, 6.0 * g, **FUSED_TOL[F64])


# -------------------------------------------------------------------------- half precision


@pytest.mark.parametrize(
    "kw",
    [{}, {"weight": True, "ignore_index": -100, "label_smoothing": 0.1}],
    ids=_case_id,
)
@reductions
@halves
def test_half_input_is_computed_in_float32(kw, reduction, dtype):
    """Half logits: the loss has the input's dtype and equals the float32 computation on the
    same (upcast) logits to within one rounding to the half dtype; the gradient likewise."""
    kw = dict(kw)
    x = _logits((9, K), dtype)
    y = _targets((9,), K, kw.get("ignore_index"))
    w = _class_weight(K) if kw.pop("weight", False) else None
    xh = x.clone().requires_grad_()
    got = L.fused_cross_entropy(
        xh, y, None if w is None else w.to(dtype), reduction=reduction, chunk_rows=4, **kw
    )
    assert got.dtype == dtype
    (gh,) = torch.autograd.grad(got.sum(), xh)
    assert gh.dtype == dtype
    x32 = x.float().requires_grad_()
    want = F.cross_entropy(
        x32, y, None if w is None else w.to(dtype).float(), reduction=reduction, **kw
    )
    (g32,) = torch.autograd.grad(want.sum(), x32)
    one_ulp = {"rtol": torch.finfo(dtype).eps, "atol": 1e-7}
    torch.testing.assert_close(got.float(), want.detach(), **one_ulp)
    torch.testing.assert_close(gh.float(), g32, **one_ulp)


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@reductions
@halves
def test_linear_half(bias, reduction, dtype):
    """Half hidden / weight / bias: loss and gradients in those dtypes, close to the float32
    computation of the same layer (loose: the logits are rounded to the half dtype)."""
    inputs, cw, kw = _linear_case((12, 16), LINEAR_CASES[1], dtype, bias)
    wrt = ("hidden", "weight", "bias") if bias else ("hidden", "weight")
    got = run(
        lambda **a: L.linear_cross_entropy(
            **a, class_weight=cw.to(dtype), reduction=reduction, chunk_rows=5, **kw
        ),
        inputs,
        wrt,
    )
    want = run(
        lambda **a: _unfused(**a, class_weight=cw.to(dtype).float(), reduction=reduction, **kw),
        {k: (v.float() if v.is_floating_point() else v) for k, v in inputs.items()},
        wrt,
    )
    assert got[0].dtype == dtype
    _assert_close_to_scale(got[0], want[0], 2e-2)
    for name in wrt:
        assert got[1][name].dtype == dtype
        _assert_close_to_scale(got[1][name], want[1][name], 2e-2)


def _assert_close_to_scale(got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    """Every element within ``rel`` times the largest magnitude of ``want``."""
    err = (got.double() - want.double()).abs().max().item()
    scale = want.double().abs().max().item()
    assert err <= rel * scale, f"max error {err:.3g} > {rel} x {scale:.3g}"


# ------------------------------------------------------------ dispatch from cross_entropy


@pytest.fixture
def fused_calls(monkeypatch):
    """Record the calls cross_entropy makes to the fused path."""
    calls = []
    apply = fused.apply

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return apply(*args, **kwargs)

    monkeypatch.setattr(fused, "apply", spy)
    return calls


@pytest.mark.parametrize(
    ("label_smoothing", "smoothing"), [(0.0, "uniform"), (0.1, "uniform"), (0.1, "others")]
)
def test_cross_entropy_dispatches_to_fused_for_large_cpu_input(
    fused_calls, label_smoothing, smoothing
):
    n, k = 512, 4096
    x = _logits((n, k), torch.float32, scale=2.0).requires_grad_()
    y, w = _targets((n,), k, -100), _class_weight(k, torch.float32)
    assert fused.wins(x)
    got = L.cross_entropy(x, y, w, label_smoothing=label_smoothing, smoothing=smoothing)
    assert len(fused_calls) == 1
    assert type(got.grad_fn).__name__ == "_FusedCrossEntropyBackward"
    (g,) = torch.autograd.grad(got, x)
    # 'others' is PyTorch's uniform rule with ε' = εK/(K-1) (cross_entropy's docstring).
    eps = label_smoothing * k / (k - 1) if smoothing == "others" else label_smoothing
    x_ref = x.detach().clone().requires_grad_()
    want = F.cross_entropy(x_ref, y, w, label_smoothing=eps)
    (g_ref,) = torch.autograd.grad(want, x_ref)
    torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-9)


def test_cross_entropy_does_not_dispatch_without_grad(fused_calls):
    n, k = 512, 4096
    x, y = _logits((n, k), torch.float32, scale=2.0), _targets((n,), k, -100)
    assert not fused.wins(x)
    got = L.cross_entropy(x, y, label_smoothing=0.1)
    xg = x.clone().requires_grad_()
    with torch.no_grad():
        assert not fused.wins(xg)
        got_no_grad = L.cross_entropy(xg, y, label_smoothing=0.1)
    assert fused_calls == []
    want = F.cross_entropy(x, y, label_smoothing=0.1)
    torch.testing.assert_close(got, want, **EXACT)
    torch.testing.assert_close(got_no_grad, want, **EXACT)


def test_wins_conditions():
    """CPU, a gradient wanted, 2-D, K >= 1024, N·K >= 2^21."""
    assert fused.wins(torch.empty(2048, 1024, requires_grad=True))
    assert not fused.wins(torch.empty(2048, 1023, requires_grad=True))  # K too small
    assert not fused.wins(torch.empty(2047, 1024, requires_grad=True))  # N·K too small
    assert not fused.wins(torch.empty(2048, 1024))  # no gradient wanted
    assert not fused.wins(torch.empty(4, 1024, 512, requires_grad=True))  # not 2-D
    assert not fused.wins(torch.empty(2048, 1024, device="meta", requires_grad=True))


# ------------------------------------------------------------------------------- modules

MODULE_OPTIONS = [
    {},
    {"ignore_index": 2, "reduction": "sum", "label_smoothing": 0.2, "z_loss": 0.01},
    {"reduction": "none", "label_smoothing": 0.3, "smoothing": "others", "softcap": 3.0},
    {"ignore_index": 0, "label_smoothing": 0.1, "smoothing": "opennmt", "chunk_rows": 3},
]


# opennmt takes no class weight (a bad-input case in test_checks)
module_cases = pytest.mark.parametrize(
    ("opts", "weighted"),
    [(o, w) for o in MODULE_OPTIONS for w in (False, True) if not (w and "opennmt" in str(o))],
    ids=lambda v: _case_id(v) if isinstance(v, dict) else ("weighted" if v else "unweighted"),
)


@module_cases
def test_fused_module_equals_function(opts, weighted):
    x, y = _logits((8, K)), _targets((8,), K, opts.get("ignore_index"))
    w = _class_weight(K) if weighted else None
    module = L.FusedCrossEntropyLoss(w, **opts)
    check(
        lambda input: module(input, y),
        lambda input: L.fused_cross_entropy(input, y, w, **opts),
        {"input": x},
        ("input",),
        tol=EXACT,
    )
    if weighted:
        assert "weight" in module.state_dict()


@module_cases
def test_linear_module_equals_function(opts, weighted):
    inputs, cw, _ = _linear_case((2, 4, 8), {"class_weight": weighted}, F64, bias=True)
    inputs["target"] = _targets((2, 4), K, opts.get("ignore_index"))
    module = L.LinearCrossEntropyLoss(class_weight=cw, **opts)
    check(
        lambda hidden, weight, target, bias: module(hidden, weight, target, bias),
        lambda **a: L.linear_cross_entropy(**a, class_weight=cw, **opts),
        inputs,
        ("hidden", "weight", "bias"),
        tol=EXACT,
    )
    if weighted:
        assert "class_weight" in module.state_dict()


def test_inplace_module_overwrites_like_the_function():
    x, y = _logits((6, K)), _targets((6,), K)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    la, lb = a * 1.0, b * 1.0
    L.FusedCrossEntropyLoss(inplace_backward=True)(la, y).backward()
    L.fused_cross_entropy(lb, y, inplace_backward=True).backward()
    torch.testing.assert_close(la.detach(), lb.detach(), **EXACT)
    torch.testing.assert_close(a.grad, b.grad, **EXACT)


# --------------------------------------------------------------------------- no-grad forward


@pytest.mark.parametrize("case", EXTRA_CASES, ids=_case_id)
@reductions
def test_forward_without_grad_gives_the_same_value(case, reduction):
    x, y, w, kw = _extra_case(case, torch.float32, (6, K, 2))
    opts = dict(kw, reduction=reduction, z_loss=0.01, chunk_rows=5)
    with_grad = L.fused_cross_entropy(x.clone().requires_grad_(), y, w, **opts)
    plain = L.fused_cross_entropy(x, y, w, **opts)
    with torch.no_grad():
        no_grad = L.fused_cross_entropy(x.clone().requires_grad_(), y, w, **opts)
    assert plain.grad_fn is None and no_grad.grad_fn is None
    torch.testing.assert_close(plain, with_grad.detach(), **TIGHT[torch.float32])
    torch.testing.assert_close(no_grad, with_grad.detach(), **TIGHT[torch.float32])
    # and the value is right, independently of the gradient path
    torch.testing.assert_close(
        plain.double(),
        _reference(x, y, w, **dict(kw, reduction=reduction, z_loss=0.01)),
        **VS_REF[torch.float32],
    )


@pytest.mark.parametrize("case", LINEAR_CASES, ids=_case_id)
@reductions
def test_linear_forward_without_grad_gives_the_same_value(case, reduction):
    inputs, cw, kw = _linear_case((2, 5, 8), case, torch.float32, bias=True)
    opts = dict(kw, class_weight=cw, reduction=reduction, chunk_rows=3)
    want = _unfused(**inputs, **dict(kw, class_weight=cw, reduction=reduction))
    plain = L.linear_cross_entropy(**inputs, **opts)
    with torch.no_grad():
        leaves = {
            k: (v.clone().requires_grad_() if v.is_floating_point() else v)
            for k, v in inputs.items()
        }
        no_grad = L.linear_cross_entropy(**leaves, **opts)
    assert plain.grad_fn is None and no_grad.grad_fn is None
    torch.testing.assert_close(plain, want, **LINEAR_TOL[torch.float32])
    torch.testing.assert_close(no_grad, want, **LINEAR_TOL[torch.float32])


# -------------------------------------------------------------------------- library bugs
# Each test below fails today; its comment says what the library does and what is expected.


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_all_rows_ignored_mean_gradient_is_zero(label_smoothing):
    """Fixed bug: every item ignored with reduction='mean': the loss is NaN (0/0, as
    PyTorch) but the gradient is NaN everywhere; PyTorch's is zero (no item contributes).
    The per-row scale kept/Σ item_weight is 0/0 = NaN for every row, ignored ones included,
    so a batch of pure padding poisons the parameters with NaN. Same in linear_cross_entropy
    (next test)."""
    x, y = _logits((5, K)).requires_grad_(), torch.full((5,), -100)
    (g,) = torch.autograd.grad(L.fused_cross_entropy(x, y, label_smoothing=label_smoothing), x)
    (want,) = torch.autograd.grad(F.cross_entropy(x, y, label_smoothing=label_smoothing), x)
    torch.testing.assert_close(want, torch.zeros_like(x), **EXACT)  # PyTorch's behaviour
    torch.testing.assert_close(g, want, **EXACT)


def test_linear_all_rows_ignored_mean_gradient_is_zero():
    """Fixed bug: as above, for linear_cross_entropy: NaN gradients for hidden and weight
    (and bias) where F.cross_entropy(F.linear(...)) gives zeros."""
    inputs, _, _ = _linear_case((4, 8), {}, F64, bias=True)
    inputs["target"] = torch.full((4,), -100)
    check(
        lambda **a: L.linear_cross_entropy(**a),
        lambda **a: _unfused(**a),
        inputs,
        ("hidden", "weight", "bias"),
        tol=EXACT,
        equal_nan=True,  # the values: NaN both; the gradients: zeros vs NaN
    )


@pytest.mark.parametrize(
    "mask", [-math.inf, torch.finfo(torch.float32).min, -1e9], ids=["-inf", "finfo.min", "-1e9"]
)
def test_opennmt_with_a_masked_padding_logit(mask):
    """Fixed bug: smoothing='opennmt' with the padding class's logit masked (-inf, or a
    large negative number as models often use). OpenNMT's target puts 0 on the padding class,
    so the KL does not depend on that logit (tends to a finite limit); mldl.kl_div on
    smooth_labels(..., 'opennmt') gives it. The closed form adds ε/(K-2)·(-z_pad) inside
    Σ_j (ℓ - z_j) and subtracts it again: -inf gives NaN (inf - inf), float32's finfo.min
    gives a negative KL (-5.7 for 29.9 here), -1e9 is off by ~1%: catastrophic cancellation.
    The padding column should be left out of the sum instead of added and subtracted."""
    k, pad, eps = 50, 0, 0.1
    x, y = _logits((8, k), torch.float32), torch.randint(1, k, (8,))
    x[:, pad] = mask
    q = L.smooth_labels(y, k, eps, "opennmt", ignore_index=pad, dtype=F64)
    want = L.kl_div(F.log_softmax(x.double(), -1), q, reduction="sum")
    got = L.fused_cross_entropy(
        x, y, ignore_index=pad, label_smoothing=eps, smoothing="opennmt", reduction="sum"
    )
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("chunk_rows", "exc"), [(-1, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_linear_chunk_rows_is_checked(chunk_rows, exc):
    """Fixed bug: linear_cross_entropy never checks chunk_rows (fused_cross_entropy does):
    chunk_rows=-1 silently returns all-zero losses (range(0, N, -1) is empty and the
    loss buffer is torch.empty, so possibly garbage); 1.5 or '2' end in range()'s bare
    "TypeError: 'float' object cannot be interpreted as an integer". Expected: the error
    fused_cross_entropy gives, "linear_cross_entropy: chunk_rows: expected an int ...".
    (chunk_rows=0 silently means the default, as `chunk_rows or ...`.)"""
    h, w, y = torch.randn(5, 4), torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 4])
    with pytest.raises(exc, match=r"^linear_cross_entropy: chunk_rows\b"):
        L.linear_cross_entropy(h, w, y, reduction="none", chunk_rows=chunk_rows)
    with pytest.raises(exc, match=r"^(LinearCrossEntropyLoss|linear_cross_entropy): chunk_rows"):
        L.LinearCrossEntropyLoss(reduction="none", chunk_rows=chunk_rows)(h, w, y)


@pytest.mark.parametrize("arg", ["weight", "bias"])
def test_linear_dtype_mismatch_is_a_clear_error(arg):
    """Fixed bug: hidden float32 with a float64 weight (or bias) ends in the matmul's
    "RuntimeError: expected m1 and m2 to have the same dtype, but got: float != double",
    which names neither the function nor the argument. Expected: a TypeError (or
    ValueError) "linear_cross_entropy: weight: ..." (resp. bias)."""
    kwargs = {"hidden": torch.randn(5, 4), "weight": torch.randn(7, 4), "bias": torch.randn(7)}
    kwargs[arg] = kwargs[arg].double()
    with pytest.raises((TypeError, ValueError), match=rf"^linear_cross_entropy: {arg}\b"):
        L.linear_cross_entropy(target=torch.tensor([0, 1, 2, 3, 4]), **kwargs)


@pytest.mark.parametrize("arg", ["weight", "bias"])
@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_linear_weight_and_bias_are_value_checked(arg, value):
    """Fixed bug: with value checks on, a NaN / inf in the classifier's weight or bias
    passes silently (loss NaN); hidden and class_weight are checked, and the unfused
    cross_entropy(F.linear(h, W, b), y) refuses the NaN logits. Expected: "linear_cross_
    entropy: weight: expected finite real values, got NaN at ..." (resp. bias, inf)."""
    kwargs = {"hidden": torch.randn(5, 4), "weight": torch.randn(7, 4), "bias": torch.randn(7)}
    kwargs[arg] = kwargs[arg].clone()
    kwargs[arg].view(-1)[0] = value
    with mldl.checks(True), pytest.raises(ValueError, match=rf"^linear_cross_entropy: {arg}\b"):
        L.linear_cross_entropy(target=torch.tensor([0, 1, 2, 3, 4]), **kwargs)


def test_fused_target_on_another_device():
    """Fixed bug: fused_cross_entropy does not check the target's device (linear_cross_
    entropy does): a target on another device ends in "RuntimeError: Tensor on device cpu is
    not on the expected device meta!", naming neither function nor argument."""
    with mldl.checks(False), pytest.raises(ValueError, match=r"^fused_cross_entropy: .*\btarget\b"):
        L.fused_cross_entropy(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]).to("meta"))


def test_linear_bias_on_another_device():
    """Fixed bug: linear_cross_entropy's device check leaves out bias: a bias on another
    device ends in "RuntimeError: Tensor on device meta is not on the expected device cpu!"."""
    h, w, y = torch.randn(5, 4), torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 4])
    with mldl.checks(False), pytest.raises(ValueError, match=r"^linear_cross_entropy: .*\bbias\b"):
        L.linear_cross_entropy(h, w, y, torch.zeros(7, device="meta"))


def test_linear_class_weight_device_error_names_hidden():
    """Fixed bug: a class_weight on another device is reported as "linear_cross_entropy:
    all tensors must be on one device, got input on cpu, class_weight on meta":
    linear_cross_entropy has no argument 'input' (it is hidden), as the margin_ranking
    input1 bug fixed earlier."""
    h, w, y = torch.randn(5, 4), torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 4])
    with mldl.checks(False), pytest.raises(ValueError) as info:
        L.linear_cross_entropy(h, w, y, class_weight=torch.ones(7, device="meta"))
    assert re.match(r"^linear_cross_entropy: .*\bclass_weight\b", str(info.value))
    assert "input" not in str(info.value), str(info.value)


@pytest.mark.parametrize("fn", ["fused_cross_entropy", "linear_cross_entropy"])
def test_infinite_softcap(fn):
    """Fixed bug: softcap=inf is accepted (the check allows (0, inf], though its message
    says "(0, inf)") and gives a NaN loss: inf·tanh(x/inf) = inf·0. Expected: either the
    error "<fn>: softcap: expected a value in (0, inf), got inf" or the limit c -> inf, no
    cap at all."""
    h, w, y = torch.randn(5, 4), torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 4])
    plain = F.cross_entropy(h @ w.t(), y)
    try:
        if fn == "fused_cross_entropy":
            got = L.fused_cross_entropy(h @ w.t(), y, softcap=math.inf)
        else:
            got = L.linear_cross_entropy(h, w, y, softcap=math.inf)
    except ValueError as e:
        assert re.match(rf"^{fn}: softcap\b", str(e)), str(e)
        return
    torch.testing.assert_close(got, plain, **FUSED_TOL[torch.float32])


def test_linear_backward_can_run_again():
    """Fixed bug: for 'mean'/'sum' linear_cross_entropy's backward returned the gradient
    buffer it saved in the forward, and autograd installed that very tensor as hidden.grad.
    The next accumulation (a second backward with retain_graph=True, or zero_() on .grad)
    wrote into the saved buffer. Now the gradients accumulate as the unfused layer's do."""
    inputs, cw, kw = _linear_case((10, 8), LINEAR_CASES[1], F64, bias=True)
    leaves = {k: (v.requires_grad_() if v.is_floating_point() else v) for k, v in inputs.items()}
    loss = L.linear_cross_entropy(**leaves, class_weight=cw, chunk_rows=3, **kw)
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    (loss * 2.0).backward()
    fresh = {
        k: (v.detach().clone().requires_grad_() if v.is_floating_point() else v)
        for k, v in inputs.items()
    }
    unfused = 4.0 * _unfused(**fresh, class_weight=cw, **kw)
    names = ("hidden", "weight", "bias")
    want = dict(zip(names, torch.autograd.grad(unfused, [fresh[n] for n in names]), strict=True))
    for name in ("hidden", "weight", "bias"):
        torch.testing.assert_close(leaves[name].grad, want[name], **TIGHT[F64])
