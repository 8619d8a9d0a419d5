"""Regression losses: mldl == PyTorch native and mldl == the float64 reference.

Values and gradients (w.r.t. input and target, and var / weight where they are tensors),
every reduction, several shapes, float32 and float64 (exact: mldl calls the native kernel),
half-precision smoke checks, and the documented differences from PyTorch (same-shape
requirement, weighted mean Σwl/Σw).
"""

from __future__ import annotations

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

PAIR_CASES = [
    ("l1", {}),
    ("mse", {}),
    ("smooth_l1", {"beta": 0.0}),
    ("smooth_l1", {"beta": 0.5}),
    ("smooth_l1", {"beta": 1.0}),
    ("huber", {"delta": 0.5}),
    ("huber", {"delta": 2.0}),
]
PAIR_IDS = [
    f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in PAIR_CASES
]
NATIVE_PAIR = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
    "smooth_l1": F.smooth_l1_loss,
    "huber": F.huber_loss,
}
SHAPES = [(), (1,), (7,), (1, 5), (3, 5), (2, 3, 5)]

pair_cases = pytest.mark.parametrize(("name", "kw"), PAIR_CASES, ids=PAIR_IDS)
shapes = pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
reductions = pytest.mark.parametrize("reduction", REDUCTIONS)
floats = pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
halves = pytest.mark.parametrize("dtype", HALVES, ids=dtype_id)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _pair_inputs(shape, dtype=F64):
    # Differences spread over [0, ~6], so smooth_l1 / huber see both of their branches.
    return {
        "input": 2 * torch.randn(shape, dtype=dtype),
        "target": 2 * torch.randn(shape, dtype=dtype),
    }


def _mldl_pair(name, kw, reduction):
    return lambda **a: getattr(L, name)(**a, reduction=reduction, **kw)


def _native_pair(name, kw, reduction):
    return lambda **a: NATIVE_PAIR[name](**a, reduction=reduction, **kw)


def _ref_pair(name, kw, reduction):
    return lambda **a: ref.reduce(getattr(ref, name)(a["input"], a["target"], **kw), reduction)


# ------------------------------------------------------------- l1, mse, smooth_l1, huber


@pair_cases
@shapes
@reductions
@floats
def test_pair_losses_match_native(name, kw, shape, reduction, dtype):
    inputs = _pair_inputs(shape, dtype)
    check(
        _mldl_pair(name, kw, reduction),
        _native_pair(name, kw, reduction),
        inputs,
        ("input", "target"),
        tol=EXACT,
    )


@pair_cases
@shapes
@reductions
def test_pair_losses_match_reference(name, kw, shape, reduction):
    check(
        _mldl_pair(name, kw, reduction),
        _ref_pair(name, kw, reduction),
        _pair_inputs(shape),
        ("input", "target"),
        tol=REF,
    )


@pair_cases
@reductions
@halves
def test_pair_losses_half_smoke(name, kw, reduction, dtype):
    inputs = cast(_pair_inputs((3, 5)), dtype)
    got = check(
        _mldl_pair(name, kw, reduction),
        _native_pair(name, kw, reduction),
        inputs,
        ("input", "target"),
        tol=EXACT,
    )
    assert got[0].dtype == dtype
    check(
        _mldl_pair(name, kw, reduction),
        _ref_pair(name, kw, reduction),
        inputs,
        ("input", "target"),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


def test_smooth_l1_beta_zero_is_l1():
    """The docs: ``beta = 0`` is exactly L1."""
    inputs = _pair_inputs((4, 3))
    for r in REDUCTIONS:
        check(
            _mldl_pair("smooth_l1", {"beta": 0.0}, r),
            _mldl_pair("l1", {}, r),
            inputs,
            ("input", "target"),
            tol=EXACT,
        )


@pytest.mark.parametrize("b", [0.25, 1.0, 3.0])
def test_huber_is_beta_times_smooth_l1(b):
    """The docs: ``huber(delta=b) = b * smooth_l1(beta=b)``."""
    inputs = _pair_inputs((5, 4))
    check(
        lambda **a: L.huber(**a, reduction="none", delta=b),
        lambda **a: b * L.smooth_l1(**a, reduction="none", beta=b),
        inputs,
        ("input", "target"),
        tol=TIGHT[F64],
    )


# --------------------------------------------------------------------- weighted (mldl's rule)

WEIGHT_SHAPES = [(4, 5), (5,), (4, 1), (1, 1), ()]


@pytest.mark.parametrize(("name", "kw"), PAIR_CASES, ids=PAIR_IDS)
@pytest.mark.parametrize("wshape", WEIGHT_SHAPES, ids=shape_id)
@reductions
def test_weighted_pair_losses_match_reference(name, kw, wshape, reduction):
    """The docs: ``weight`` broadcasts to input; 'mean' is the weighted mean Σ w l / Σ w."""
    inputs = _pair_inputs((4, 5))
    inputs["weight"] = torch.rand(wshape, dtype=F64) + 0.1

    def reference(input, target, weight):
        w = weight.expand(input.shape)
        loss = getattr(ref, name)(input, target, **kw)
        return ref.reduce(w * loss, reduction, item_weight=w)

    check(
        _mldl_pair(name, kw, reduction),
        reference,
        inputs,
        ("input", "target", "weight"),
        tol=REF,
    )


@pytest.mark.parametrize("name", ["l1", "mse"])
@reductions
@floats
def test_weighted_l1_mse_match_native_weight(name, reduction, dtype):
    """PyTorch 2.13's same-shape ``weight`` for l1/mse follows the same rule as mldl."""
    inputs = _pair_inputs((6, 3), dtype)
    inputs["weight"] = torch.rand(6, 3, dtype=dtype) + 0.1
    check(
        _mldl_pair(name, {}, reduction),
        _native_pair(name, {}, reduction),
        inputs,
        ("input", "target", "weight"),
        tol=TIGHT[dtype],
    )


@floats
def test_weighted_huber_mean_differs_from_native(dtype):
    """Documented difference: PyTorch's weighted huber 'mean' divides by the element count,
    mldl's by Σ w; 'none' and 'sum' agree."""
    inputs = _pair_inputs((6, 3), dtype)
    x, y = inputs["input"], inputs["target"]
    w = torch.rand(6, 3, dtype=dtype) + 0.1
    for r in ("none", "sum"):
        torch.testing.assert_close(
            L.huber(x, y, r, weight=w), F.huber_loss(x, y, r, weight=w), **TIGHT[dtype]
        )
    total = F.huber_loss(x, y, "sum", weight=w)
    torch.testing.assert_close(L.huber(x, y, weight=w), total / w.sum(), **TIGHT[dtype])
    torch.testing.assert_close(F.huber_loss(x, y, weight=w), total / w.numel(), **TIGHT[dtype])
    assert not torch.allclose(L.huber(x, y, weight=w), F.huber_loss(x, y, weight=w))


def test_unit_weight_is_unweighted():
    """With all weights 1 the weighted mean is the plain mean."""
    inputs = _pair_inputs((3, 4))
    for name, kw in PAIR_CASES:
        for r in REDUCTIONS:
            torch.testing.assert_close(
                getattr(L, name)(**inputs, reduction=r, weight=torch.ones(4, dtype=F64), **kw),
                getattr(L, name)(**inputs, reduction=r, **kw),
                **TIGHT[F64],
            )


@pytest.mark.parametrize("name", ["l1", "mse", "smooth_l1", "huber", "poisson_nll"])
def test_same_shape_required_where_pytorch_broadcasts(name):
    """Documented difference: an (N, 1) prediction and an (N,) target raise in mldl; PyTorch
    warns and broadcasts them to an (N, N) loss."""
    x, y = torch.rand(4, 1, dtype=F64), torch.rand(4, dtype=F64)
    with pytest.raises(ValueError, match="same shape"):
        getattr(L, name)(x, y, reduction="none")
    native = {**NATIVE_PAIR, "poisson_nll": F.poisson_nll_loss}[name]
    if name == "poisson_nll":  # PyTorch does not even warn here
        assert native(x, y, reduction="none").shape == (4, 4)
    else:
        with pytest.warns(UserWarning, match="target size"):
            assert native(x, y, reduction="none").shape == (4, 4)


# ------------------------------------------------------------------------------ poisson_nll

POISSON_CASES = [
    {"log_input": True, "full": False},
    {"log_input": True, "full": True},
    {"log_input": False, "full": False},
    {"log_input": False, "full": True},
    {"log_input": False, "full": False, "eps": 0.1},
    {"log_input": True, "full": True, "eps": 0.1},
]
POISSON_IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) for kw in POISSON_CASES]
POISSON_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4)]


def _poisson_inputs(shape, log_input, dtype=F64):
    x = torch.randn(shape, dtype=dtype) if log_input else 3 * torch.rand(shape, dtype=dtype)
    k = torch.poisson(torch.full(shape, 2.0, dtype=dtype))
    flat = k.view(-1)
    flat[0] = 0.0  # both sides of the Stirling mask: k <= 1 and k > 1
    if flat.numel() > 2:
        flat[1], flat[2] = 1.0, 4.0
    return {"input": x, "target": k}


@pytest.mark.parametrize("kw", POISSON_CASES, ids=POISSON_IDS)
@pytest.mark.parametrize("shape", POISSON_SHAPES, ids=shape_id)
@reductions
@floats
def test_poisson_nll_matches_native(kw, shape, reduction, dtype):
    # The target gradient is PyTorch's, NaN included (0 * log 0 at k = 0 with full=True).
    check(
        lambda **a: L.poisson_nll(**a, reduction=reduction, **kw),
        lambda **a: F.poisson_nll_loss(**a, reduction=reduction, **kw),
        _poisson_inputs(shape, kw["log_input"], dtype),
        ("input", "target"),
        tol=EXACT,
        equal_nan=True,
    )


@pytest.mark.parametrize("kw", POISSON_CASES, ids=POISSON_IDS)
@pytest.mark.parametrize("shape", POISSON_SHAPES, ids=shape_id)
@reductions
def test_poisson_nll_matches_reference(kw, shape, reduction):
    # Counts are data: the target gradient is compared only where the loss is smooth in k.
    wrt = ("input",) if kw["full"] else ("input", "target")
    check(
        lambda **a: L.poisson_nll(**a, reduction=reduction, **kw),
        lambda **a: ref.reduce(ref.poisson_nll(a["input"], a["target"], **kw), reduction),
        _poisson_inputs(shape, kw["log_input"]),
        wrt,
        tol=REF,
    )


@pytest.mark.parametrize("kw", POISSON_CASES[:4], ids=POISSON_IDS[:4])
@halves
def test_poisson_nll_half_smoke(kw, dtype):
    inputs = cast(_poisson_inputs((3, 5), kw["log_input"]), dtype)
    check(
        lambda **a: L.poisson_nll(**a, **kw),
        lambda **a: F.poisson_nll_loss(**a, **kw),
        inputs,
        ("input",),
        tol=EXACT,
    )
    check(
        lambda **a: L.poisson_nll(**a, **kw),
        lambda **a: ref.reduce(ref.poisson_nll(a["input"], a["target"], **kw), "mean"),
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


# ----------------------------------------------------------------------------- gaussian_nll

VAR_KINDS = ["same", "drop_last", "last_1", "float"]
GAUSS_SHAPES = [(5,), (1, 1), (4, 3), (2, 3, 5)]


def _gauss_inputs(shape, var_kind, dtype=F64, low=0.1):
    inputs = {"input": torch.randn(shape, dtype=dtype), "target": torch.randn(shape, dtype=dtype)}
    vshape = {
        "same": shape,
        "drop_last": shape[:-1],
        "last_1": (*shape[:-1], 1),
    }.get(var_kind)
    if vshape is None:
        inputs["var"] = 0.7
    else:
        inputs["var"] = torch.rand(vshape, dtype=dtype) + low
    return inputs


def _gauss_wrt(var_kind):
    return ("input", "target") if var_kind == "float" else ("input", "target", "var")


@pytest.mark.parametrize("var_kind", VAR_KINDS)
@pytest.mark.parametrize("shape", GAUSS_SHAPES, ids=shape_id)
@pytest.mark.parametrize("full", [False, True])
@reductions
@floats
def test_gaussian_nll_matches_native(var_kind, shape, full, reduction, dtype):
    check(
        lambda **a: L.gaussian_nll(**a, full=full, reduction=reduction),
        lambda **a: F.gaussian_nll_loss(**a, full=full, reduction=reduction),
        _gauss_inputs(shape, var_kind, dtype),
        _gauss_wrt(var_kind),
        tol=EXACT,
    )


@pytest.mark.parametrize("var_kind", VAR_KINDS)
@pytest.mark.parametrize("shape", GAUSS_SHAPES, ids=shape_id)
@pytest.mark.parametrize("full", [False, True])
@reductions
def test_gaussian_nll_matches_reference(var_kind, shape, full, reduction):
    check(
        lambda **a: L.gaussian_nll(**a, full=full, reduction=reduction),
        lambda **a: ref.reduce(ref.gaussian_nll(**a, full=full), reduction),
        _gauss_inputs(shape, var_kind),
        _gauss_wrt(var_kind),
        tol=REF,
    )


@reductions
@floats
def test_gaussian_nll_clamps_small_variances(reduction, dtype):
    """The docs: var is clamped at eps (a clamp, not an addition), its gradient not stopped;
    about half of these variances lie below eps."""
    inputs = _gauss_inputs((6, 4), "same", dtype, low=0.0)
    inputs["var"] = 0.2 * inputs["var"]
    assert (inputs["var"] < 0.1).any() and (inputs["var"] > 0.1).any()

    def mldl_fn(**a):
        return L.gaussian_nll(**a, eps=0.1, reduction=reduction)

    check(
        mldl_fn,
        lambda **a: F.gaussian_nll_loss(**a, eps=0.1, reduction=reduction),
        inputs,
        ("input", "target", "var"),
        tol=EXACT,
    )
    if dtype == F64:
        check(
            mldl_fn,
            lambda **a: ref.reduce(ref.gaussian_nll(**a, eps=0.1), reduction),
            inputs,
            ("input", "target", "var"),
            tol=REF,
        )


def test_gaussian_nll_unit_variance_is_half_mse_plus_constant():
    """The notes: gaussian_nll with var=1 is mse / 2 plus a constant (½ log 2π with full)."""
    inputs = _pair_inputs((5, 3))
    check(
        lambda **a: L.gaussian_nll(**a, var=1.0, full=True),
        lambda **a: L.mse(**a) / 2 + 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=F64)),
        inputs,
        ("input", "target"),
        tol=TIGHT[F64],
    )


@pytest.mark.parametrize("var_kind", ["same", "last_1", "float"])
@halves
def test_gaussian_nll_half_smoke(var_kind, dtype):
    inputs = cast(_gauss_inputs((4, 3), var_kind), dtype)
    wrt = _gauss_wrt(var_kind)
    got = run(lambda **a: L.gaussian_nll(**a), inputs, wrt)
    assert_runs_close(got, run(lambda **a: F.gaussian_nll_loss(**a), inputs, wrt), **EXACT)
    assert_runs_close(
        got,
        run(lambda **a: ref.reduce(ref.gaussian_nll(**a), "mean"), inputs, wrt),
        check_dtype=False,
        **HALF_VS_REF[dtype],
    )
