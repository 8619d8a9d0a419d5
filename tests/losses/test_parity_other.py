"""KL divergence, margin, metric and sequence losses: mldl == PyTorch native and mldl == the
float64 reference (values and gradients, every reduction, float32/float64, half smoke
checks), plus the documented differences from PyTorch (soft_margin overflow) and one
inherited PyTorch behaviour made explicit (CTC's gradient w.r.t. log_probs).
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
    cast,
    check,
    dtype_id,
    one_thread,
    shape_id,
)

F64 = torch.float64

reductions = pytest.mark.parametrize("reduction", REDUCTIONS)
floats = pytest.mark.parametrize("dtype", FLOATS, ids=dtype_id)
halves = pytest.mark.parametrize("dtype", HALVES, ids=dtype_id)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _signs(shape, dtype=F64):
    """Labels 1 / -1, both present when there are two or more."""
    y = torch.where(torch.rand(shape) < 0.5, 1.0, -1.0).to(dtype)
    if y.numel() > 1:
        y.view(-1)[:2] = torch.tensor([1.0, -1.0])
    return y


# ---------------------------------------------------------------------------------- kl_div

KL_REDUCTIONS = ("none", "sum", "mean", "batchmean")
KL_SHAPES = [(5,), (1, 3), (4, 5), (2, 3, 4)]
# PyTorch (and so mldl) warns that 'mean' is not the KL divergence of the math.
kl_mean_warning = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


def _kl_inputs(shape, log_target, zeros, dtype=F64):
    x = torch.log_softmax(2 * torch.randn(shape, dtype=F64), -1)
    logits = 2 * torch.randn(shape, dtype=F64)
    if zeros:  # a few classes of zero target mass: 0 log 0 = 0
        logits.view(-1)[::3] = -torch.inf
    t = torch.log_softmax(logits, -1) if log_target else torch.softmax(logits, -1)
    return {"input": x.to(dtype), "target": t.to(dtype)}


KL_CASES = [
    {"log_target": False, "zeros": False},
    {"log_target": False, "zeros": True},
    {"log_target": True, "zeros": False},
]
KL_IDS = ["probabilities", "probabilities-with-zeros", "log_target"]


@kl_mean_warning
@pytest.mark.parametrize("case", KL_CASES, ids=KL_IDS)
@pytest.mark.parametrize("shape", KL_SHAPES, ids=shape_id)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@floats
def test_kl_div_matches_native(case, shape, reduction, dtype):
    """mldl computes the pointwise KL itself (for 0·log 0 = 0 at masked inputs), so it
    equals PyTorch up to rounding. Both give NaN for the target gradient at a zero target
    (d/dy y log y = -inf there)."""
    lt = case["log_target"]
    check(
        lambda **a: L.kl_div(**a, reduction=reduction, log_target=lt),
        lambda **a: F.kl_div(**a, reduction=reduction, log_target=lt),
        _kl_inputs(shape, lt, case["zeros"], dtype),
        ("input", "target"),
        tol=TIGHT[dtype],
        equal_nan=True,
    )


@kl_mean_warning
@pytest.mark.parametrize("case", KL_CASES, ids=KL_IDS)
@pytest.mark.parametrize("shape", KL_SHAPES, ids=shape_id)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_matches_reference(case, shape, reduction):
    lt = case["log_target"]
    # The target gradient is compared where it is finite (no zero target).
    wrt = ("input",) if case["zeros"] else ("input", "target")
    check(
        lambda **a: L.kl_div(**a, reduction=reduction, log_target=lt),
        lambda **a: ref.reduce(ref.kl_div(**a, log_target=lt), reduction),
        _kl_inputs(shape, lt, case["zeros"]),
        wrt,
        tol=REF,
    )


def test_kl_div_batchmean_is_the_kl_divergence():
    """The docs: 'batchmean' is KL(y || e^x) summed over classes, averaged over the batch."""
    inputs = _kl_inputs((4, 5), False, True)
    p, log_q = inputs["target"], inputs["input"]
    kl_rows = torch.stack(
        [
            sum(pi * (torch.log(pi) - lq) for pi, lq in zip(pr, lr, strict=True) if pi > 0)
            for pr, lr in zip(p, log_q, strict=True)
        ]
    )
    torch.testing.assert_close(L.kl_div(log_q, p, reduction="batchmean"), kl_rows.mean(), **REF)


def test_kl_div_mean_warns_like_pytorch():
    inputs = _kl_inputs((2, 3), False, False)
    with pytest.warns(UserWarning, match="batchmean"):
        L.kl_div(**inputs, reduction="mean")


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "batchmean"])
@halves
def test_kl_div_half_smoke(log_target, reduction, dtype):
    inputs = cast(_kl_inputs((4, 5), log_target, False), dtype)
    got = check(
        lambda **a: L.kl_div(**a, reduction=reduction, log_target=log_target),
        lambda **a: F.kl_div(**a, reduction=reduction, log_target=log_target),
        inputs,
        ("input",),
        tol=EXACT,
    )
    want = ref.reduce(ref.kl_div(**inputs, log_target=log_target), reduction)
    torch.testing.assert_close(got[0].double(), want, **HALF_VS_REF[dtype])


# ------------------------------------------------------------------------- hinge_embedding

SIGNED_SHAPES = [(), (1,), (7,), (3, 5)]


@pytest.mark.parametrize("margin", [1.0, 0.5, -0.25])
@pytest.mark.parametrize("shape", SIGNED_SHAPES, ids=shape_id)
@pytest.mark.parametrize("int_target", [False, True], ids=["float-target", "int-target"])
@reductions
@floats
def test_hinge_embedding_matches_native_and_reference(margin, shape, int_target, reduction, dtype):
    y = _signs(shape, dtype)
    inputs = {
        "input": 1.5 * torch.randn(shape, dtype=dtype),
        "target": y.long() if int_target else y,
    }
    kw = {"margin": margin, "reduction": reduction}
    check(
        lambda **a: L.hinge_embedding(**a, **kw),
        lambda **a: F.hinge_embedding_loss(**a, **kw),
        inputs,
        ("input",),
        tol=EXACT,
    )
    if dtype == F64:
        check(
            lambda **a: L.hinge_embedding(**a, **kw),
            lambda **a: ref.reduce(ref.hinge_embedding(**a, margin=margin), reduction),
            inputs,
            ("input",),
            tol=REF,
        )


# ------------------------------------------------------------------------ cosine_embedding

COSINE_SHAPES = [(4,), (1, 4), (5, 3), (6, 7)]


@pytest.mark.parametrize("margin", [0.0, 0.4, -0.3])
@pytest.mark.parametrize("shape", COSINE_SHAPES, ids=shape_id)
@reductions
@floats
def test_cosine_embedding_matches_native_and_reference(margin, shape, reduction, dtype):
    inputs = {
        "input1": torch.randn(shape, dtype=dtype),
        "input2": torch.randn(shape, dtype=dtype),
        "target": _signs(shape[:-1], dtype).long(),
    }
    kw = {"margin": margin, "reduction": reduction}
    wrt = ("input1", "input2")
    check(
        lambda **a: L.cosine_embedding(**a, **kw),
        lambda **a: F.cosine_embedding_loss(**a, **kw),
        inputs,
        wrt,
        tol=EXACT,
    )
    if dtype == F64:
        check(
            lambda **a: L.cosine_embedding(**a, **kw),
            lambda **a: ref.reduce(ref.cosine_embedding(**a, margin=margin), reduction),
            inputs,
            wrt,
            tol=REF,
        )


# -------------------------------------------------------------------------- margin_ranking


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("shape", [(), (1,), (7,)], ids=shape_id)
@reductions
@floats
def test_margin_ranking_matches_native_and_reference(margin, shape, reduction, dtype):
    inputs = {
        "input1": torch.randn(shape, dtype=dtype),
        "input2": torch.randn(shape, dtype=dtype),
        "target": _signs(shape, dtype),
    }
    kw = {"margin": margin, "reduction": reduction}
    wrt = ("input1", "input2")
    check(
        lambda **a: L.margin_ranking(**a, **kw),
        lambda **a: F.margin_ranking_loss(**a, **kw),
        inputs,
        wrt,
        tol=EXACT,
    )
    if dtype == F64:
        check(
            lambda **a: L.margin_ranking(**a, **kw),
            lambda **a: ref.reduce(ref.margin_ranking(**a, margin=margin), reduction),
            inputs,
            wrt,
            tol=REF,
        )


@halves
def test_hinge_cosine_ranking_half_smoke(dtype):
    x, y = torch.randn(5, 3, dtype=F64), _signs((5,))
    cases = [
        (
            L.hinge_embedding,
            F.hinge_embedding_loss,
            ref.hinge_embedding,
            {"input": x[:, 0], "target": y},
        ),
        (
            L.cosine_embedding,
            F.cosine_embedding_loss,
            ref.cosine_embedding,
            {"input1": x, "input2": x.flip(0), "target": y},
        ),
        (
            L.margin_ranking,
            F.margin_ranking_loss,
            ref.margin_ranking,
            {"input1": x[:, 0], "input2": x[:, 1], "target": y},
        ),
    ]
    for mine, native, reference, inputs in cases:
        inputs = cast(inputs, dtype)
        got = check(mine, native, inputs, tol=EXACT)
        torch.testing.assert_close(
            got[0].double(), ref.reduce(reference(**inputs), "mean"), **HALF_VS_REF[dtype]
        )


# ----------------------------------------------------------------------------- soft_margin


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 3, 4)], ids=shape_id)
@reductions
@floats
def test_soft_margin_matches_native_and_reference(shape, reduction, dtype):
    """Where PyTorch's log(1 + exp(-yx)) is finite, mldl's softplus(-yx) agrees with it."""
    inputs = {"input": 3 * torch.randn(shape, dtype=dtype), "target": _signs(shape, dtype)}
    check(
        lambda **a: L.soft_margin(**a, reduction=reduction),
        lambda **a: F.soft_margin_loss(**a, reduction=reduction),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )
    if dtype == F64:
        check(
            lambda **a: L.soft_margin(**a, reduction=reduction),
            lambda **a: ref.reduce(ref.soft_margin(**a), reduction),
            inputs,
            ("input",),
            tol=REF,
        )


@pytest.mark.parametrize(
    ("dtype", "big"), [(torch.float32, 100.0), (F64, 800.0)], ids=["float32", "float64"]
)
@reductions
def test_soft_margin_finite_where_pytorch_overflows(dtype, big, reduction):
    """Documented difference: for -yx beyond exp's range PyTorch gives inf with a NaN
    gradient; mldl gives the limit -yx with gradient -y, as the reference does."""
    x = torch.tensor([-big, big, 0.5, -2.0], dtype=dtype)
    y = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=dtype)
    inputs = {"input": x, "target": y}
    got = check(
        lambda **a: L.soft_margin(**a, reduction=reduction),
        lambda **a: ref.reduce(ref.soft_margin(**a), reduction),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
        check_dtype=False,
    )
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]["input"]).all()
    native = F.soft_margin_loss(x.clone().requires_grad_(), y, reduction="none")
    assert torch.isposinf(native[:2]).all()
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(F.soft_margin_loss(xg, y, reduction="sum"), xg)
    assert g[:2].isnan().all()


@halves
def test_soft_margin_half_smoke(dtype):
    inputs = cast({"input": 3 * torch.randn(4, 5, dtype=F64), "target": _signs((4, 5))}, dtype)
    got = check(
        lambda **a: L.soft_margin(**a),
        lambda **a: F.soft_margin_loss(**a),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )
    assert got[0].dtype == dtype
    check(
        lambda **a: L.soft_margin(**a),
        lambda **a: ref.reduce(ref.soft_margin(**a), "mean"),
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


# ----------------------------------------------------------------------- multilabel_margin


def _multilabel_target(n, c):
    """Rows of label indices, each ended by -1 (unless it holds every class) and followed by
    junk that must not be read: some rows with no label, one with all."""
    rows = []
    for i in range(n):
        m = [0, c, 1, 2, c - 1][i % 5] if c > 2 else i % (c + 1)
        labels = torch.randperm(c)[:m].tolist()
        junk = torch.randint(0, c, (c,)).tolist()
        row = [*labels, -1, *junk][:c] if m < c else labels
        rows.append(row)
    return torch.tensor(rows)


@pytest.mark.parametrize("shape", [(4,), (1, 5), (5, 4), (6, 7)], ids=shape_id)
@reductions
@floats
def test_multilabel_margin_matches_native_and_reference(shape, reduction, dtype):
    n, c = (1, shape[0]) if len(shape) == 1 else shape
    target = _multilabel_target(n, c)
    if len(shape) == 1:
        target = torch.tensor([1, 3, -1, 0])  # labels {1, 3}; the 0 after -1 is not read
    inputs = {"input": torch.randn(shape, dtype=dtype), "target": target}
    check(
        lambda **a: L.multilabel_margin(**a, reduction=reduction),
        lambda **a: F.multilabel_margin_loss(**a, reduction=reduction),
        inputs,
        ("input",),
        tol=EXACT,
    )
    if dtype == F64:
        check(
            lambda **a: L.multilabel_margin(**a, reduction=reduction),
            lambda **a: ref.reduce(ref.multilabel_margin(**a), reduction),
            inputs,
            ("input",),
            tol=REF,
        )


# ----------------------------------------------------------------------------- top2_margin

TOP2_CASES = [
    {},
    {"margin": 0.3},
    {"p": 2},
    {"weight": True},
    {"ignore_index": 1},
    {"margin": 2.0, "p": 2, "weight": True, "ignore_index": -1},
]


def _top2_inputs(shape, case, dtype=F64):
    k = shape[-1]
    inputs = {"input": torch.randn(shape, dtype=dtype)}
    if len(shape) == 1:
        inputs["target"] = torch.tensor(0)
    else:
        t = torch.randint(0, k, shape[:1])
        if "ignore_index" in case:
            t[1::3] = case["ignore_index"]
            t[0] = 0
        inputs["target"] = t
    if case.get("weight"):
        inputs["weight"] = torch.rand(k, dtype=dtype) + 0.2
    kw = {k_: v for k_, v in case.items() if k_ != "weight"}
    return inputs, kw


@pytest.mark.parametrize(
    "case", TOP2_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default"
)
@pytest.mark.parametrize("shape", [(3,), (1, 3), (6, 4), (5, 2), (8, 5)], ids=shape_id)
@reductions
def test_top2_margin_matches_reference(case, shape, reduction):
    inputs, kw = _top2_inputs(shape, case)

    def reference(input, target, weight=None):
        loss, item_weight = ref.top2_margin(
            input,
            target,
            kw.get("margin", 1.0),
            weight,
            kw.get("ignore_index", -100),
            kw.get("p", 1),
        )
        return ref.reduce(loss, reduction, item_weight)

    check(
        lambda **a: L.top2_margin(**a, reduction=reduction, **kw),
        reference,
        inputs,
        ("input",),
        tol=REF,
    )


@pytest.mark.parametrize("margin", [1.0, 0.4])
@pytest.mark.parametrize("p", [1, 2])
@reductions
@floats
def test_top2_margin_two_classes_is_twice_multi_margin(margin, p, reduction, dtype):
    """With two classes the best other score is the only other score, so the notes' loss is
    PyTorch's multi_margin_loss without its 1/C: top2 = 2 · multi_margin."""
    inputs = {"input": torch.randn(7, 2, dtype=dtype), "target": torch.randint(0, 2, (7,))}
    check(
        lambda **a: L.top2_margin(**a, margin=margin, reduction=reduction, p=p),
        lambda **a: 2 * F.multi_margin_loss(**a, p=p, margin=margin, reduction=reduction),
        inputs,
        ("input",),
        tol=TIGHT[dtype],
    )


@halves
def test_top2_margin_half_smoke(dtype):
    inputs, kw = _top2_inputs((6, 4), TOP2_CASES[5])
    inputs = cast(inputs, dtype)

    def reference(input, target, weight):
        loss, w = ref.top2_margin(input, target, 2.0, weight, -1, 2)
        return ref.reduce(loss, "mean", w)

    check(
        lambda **a: L.top2_margin(**a, **kw),
        reference,
        inputs,
        ("input",),
        tol=HALF_VS_REF[dtype],
        check_dtype=False,
    )


# --------------------------------------------------------------------------- triplet_margin

TRIPLET_SHAPES = [(4,), (1, 3), (5, 4), (7, 2)]
TRIPLET_CASES = [
    {},
    {"p": 1.0},
    {"p": 3.0, "margin": 0.2},
    {"swap": True},
    {"eps": 0.1, "margin": 2.0, "swap": True},
]
TRIPLET_IDS = ["-".join(f"{k}={v}" for k, v in c.items()) or "default" for c in TRIPLET_CASES]
TRIPLET_WRT = ("anchor", "positive", "negative")


def _triplet_inputs(shape, dtype=F64):
    a = torch.randn(shape, dtype=dtype)
    return {
        "anchor": a,
        "positive": a + 0.7 * torch.randn(shape, dtype=dtype),
        "negative": a + torch.randn(shape, dtype=dtype),
    }


@pytest.mark.parametrize("case", TRIPLET_CASES, ids=TRIPLET_IDS)
@pytest.mark.parametrize("shape", TRIPLET_SHAPES, ids=shape_id)
@reductions
@floats
def test_triplet_margin_matches_native(case, shape, reduction, dtype):
    check(
        lambda **a: L.triplet_margin(**a, reduction=reduction, **case),
        lambda **a: F.triplet_margin_loss(**a, reduction=reduction, **case),
        _triplet_inputs(shape, dtype),
        TRIPLET_WRT,
        tol=EXACT,
    )


@pytest.mark.parametrize("case", TRIPLET_CASES, ids=TRIPLET_IDS)
@pytest.mark.parametrize("shape", TRIPLET_SHAPES, ids=shape_id)
@reductions
def test_triplet_margin_matches_reference(case, shape, reduction):
    check(
        lambda **a: L.triplet_margin(**a, reduction=reduction, **case),
        lambda **a: ref.reduce(ref.triplet_margin(**a, **case), reduction),
        _triplet_inputs(shape),
        TRIPLET_WRT,
        tol=REF,
    )


def _cosine_distance_native(x, y):
    return 1 - F.cosine_similarity(x, y, dim=-1)


def _cosine_distance_ref(x, y):
    return 1 - (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))


@pytest.mark.parametrize("distance", ["default", "cosine"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("shape", [(4,), (1, 3), (6, 4)], ids=shape_id)
@reductions
@floats
def test_triplet_margin_with_distance_matches_native_and_reference(
    distance, swap, margin, shape, reduction, dtype
):
    inputs = _triplet_inputs(shape, dtype)
    kw = {"margin": margin, "swap": swap, "reduction": reduction}
    fn = _cosine_distance_native if distance == "cosine" else None
    check(
        lambda **a: L.triplet_margin_with_distance(**a, distance_function=fn, **kw),
        lambda **a: F.triplet_margin_with_distance_loss(**a, distance_function=fn, **kw),
        inputs,
        TRIPLET_WRT,
        tol=EXACT,
    )
    if dtype == F64:
        ref_fn = _cosine_distance_ref if distance == "cosine" else None
        check(
            lambda **a: L.triplet_margin_with_distance(**a, distance_function=fn, **kw),
            lambda **a: ref.reduce(
                ref.triplet_margin(**a, margin=margin, swap=swap, distance=ref_fn), reduction
            ),
            inputs,
            TRIPLET_WRT,
            tol=REF,
        )


@halves
def test_triplet_half_smoke(dtype):
    inputs = cast(_triplet_inputs((5, 4)), dtype)
    got = check(
        lambda **a: L.triplet_margin(**a, swap=True),
        lambda **a: F.triplet_margin_loss(**a, swap=True),
        inputs,
        TRIPLET_WRT,
        tol=EXACT,
    )
    torch.testing.assert_close(
        got[0].double(),
        ref.reduce(ref.triplet_margin(**inputs, swap=True), "mean"),
        **HALF_VS_REF[dtype],
    )


# --------------------------------------------------------------------------- distance_match

DM_CASES = [
    {},
    {"scale": 0.5, "offset": 2.0},
    {"p": 1.0, "offset": 1.0},
    {"eps": 0.0, "scale": 2.0, "offset": 3.0},
]
DM_IDS = ["-".join(f"{k}={v}" for k, v in c.items()) or "default" for c in DM_CASES]


def _dm_inputs(shape, target_kind, dtype=F64):
    n = shape[:-1]
    labels = torch.rand(n) < 0.5
    if labels.numel() > 1:
        labels.view(-1)[:2] = torch.tensor([True, False])
    target = {"bool": labels, "int": labels.long(), "float": labels.to(dtype)}[target_kind]
    return {
        "x1": torch.randn(shape, dtype=dtype),
        "x2": torch.randn(shape, dtype=dtype),
        "target": target,
    }


def _dm_native(scale=1.0, offset=0.0, p=2.0, eps=1e-6, reduction="mean"):
    def native(x1, x2, target):
        logit = offset - scale * F.pairwise_distance(x1, x2, p=p, eps=eps)
        return F.binary_cross_entropy_with_logits(
            logit, target.to(logit.dtype), reduction=reduction
        )

    return native


@pytest.mark.parametrize("case", DM_CASES, ids=DM_IDS)
@pytest.mark.parametrize("shape", [(4,), (1, 3), (6, 4)], ids=shape_id)
@pytest.mark.parametrize("target_kind", ["bool", "int", "float"])
@reductions
@floats
def test_distance_match_matches_native_composition(case, shape, target_kind, reduction, dtype):
    """PyTorch has no such loss; its pieces (pairwise_distance, BCE with logits) composed."""
    check(
        lambda **a: L.distance_match(**a, reduction=reduction, **case),
        _dm_native(reduction=reduction, **case),
        _dm_inputs(shape, target_kind, dtype),
        ("x1", "x2"),
        tol=EXACT,
    )


@pytest.mark.parametrize("case", DM_CASES, ids=DM_IDS)
@pytest.mark.parametrize("shape", [(4,), (1, 3), (6, 4)], ids=shape_id)
@reductions
def test_distance_match_matches_reference(case, shape, reduction):
    check(
        lambda **a: L.distance_match(**a, reduction=reduction, **case),
        lambda **a: ref.reduce(ref.distance_match(**a, **case), reduction),
        _dm_inputs(shape, "float"),
        ("x1", "x2"),
        tol=REF,
    )


@reductions
def test_distance_match_tensor_scale_and_offset_gradients(reduction):
    """Scale and offset as tensors (what DistanceMatchLoss learns) get the reference's
    gradients, as do the embeddings."""
    inputs = _dm_inputs((6, 4), "int")
    inputs["scale"] = torch.tensor(0.8, dtype=F64)
    inputs["offset"] = torch.tensor(1.5, dtype=F64)
    check(
        lambda **a: L.distance_match(**a, reduction=reduction),
        lambda **a: ref.reduce(ref.distance_match(**a), reduction),
        inputs,
        ("x1", "x2", "scale", "offset"),
        tol=REF,
    )


def test_match_probability_is_sigmoid_of_the_logit():
    """The docs: match probability σ(b - s ||x1 - x2 + eps||_p)."""
    x1, x2 = torch.randn(5, 3, dtype=F64), torch.randn(5, 3, dtype=F64)
    want = 1 / (1 + torch.exp(-(1.5 - 0.7 * ref.pairwise_distance(x1, x2, 1.0, 1e-6))))
    torch.testing.assert_close(L.match_probability(x1, x2, 0.7, 1.5, p=1.0), want, **REF)


@halves
def test_distance_match_half_smoke(dtype):
    inputs = cast(_dm_inputs((6, 4), "float"), dtype)
    got = check(
        lambda **a: L.distance_match(**a, offset=1.0),
        _dm_native(offset=1.0),
        inputs,
        ("x1", "x2"),
        tol=EXACT,
    )
    want = ref.reduce(ref.distance_match(**inputs, offset=1.0), "mean")
    torch.testing.assert_close(got[0].double(), want, **HALF_VS_REF[dtype])


# -------------------------------------------------------------------------------------- ctc

# (T, C, blank, targets, input_lengths, layout): targets as lists of labels. T <= 5, C <= 3:
# at most 3^5 = 243 alignments per sequence for the brute-force reference.
CTC_CASES = {
    "padded": (5, 3, 0, [[1, 2], [2], [1, 1, 2]], [5, 4, 5], "padded"),
    "concatenated": (5, 3, 0, [[1, 2], [2], [1, 1, 2]], [5, 4, 5], "concatenated"),
    "blank-last": (4, 3, 2, [[0, 1], [1, 1], [0]], [4, 4, 2], "padded"),
    "empty-target": (4, 3, 0, [[], [1], [2, 1]], [4, 3, 4], "padded"),
    "one-sequence": (5, 2, 0, [[1, 1]], [5], "padded"),
    "unbatched": (5, 3, 0, [[2, 1, 2]], [5], "unbatched"),
    "impossible": (5, 3, 0, [[1, 1, 1], [1, 2]], [4, 5], "padded"),
}


def _ctc_inputs(name, dtype=F64):
    t_len, c, blank, targets, input_lengths, layout = CTC_CASES[name]
    n = len(targets)
    logits = 2 * torch.randn(t_len, n, c, dtype=dtype)
    lengths = [len(t) for t in targets]
    if layout == "padded":
        width = max(max(lengths), 1)
        # padding beyond a row's length is never read: fill it with the blank label
        tgt = torch.full((n, width), blank, dtype=torch.long)
        for i, t in enumerate(targets):
            tgt[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        args = {"targets": tgt, "input_lengths": input_lengths, "target_lengths": lengths}
    elif layout == "concatenated":
        tgt = torch.tensor([s for t in targets for s in t], dtype=torch.long)
        args = {"targets": tgt, "input_lengths": input_lengths, "target_lengths": lengths}
    else:
        logits = logits[:, 0]
        args = {
            "targets": torch.tensor(targets[0]),
            "input_lengths": input_lengths[0],
            "target_lengths": lengths[0],
        }
    return {"logits": logits, **args}, targets, input_lengths, blank


def _ctc_mldl(blank, reduction, zero_infinity=False):
    def fn(logits, targets, input_lengths, target_lengths):
        lp = torch.log_softmax(logits, -1)
        return L.ctc(lp, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)

    return fn


def _ctc_native(blank, reduction, zero_infinity=False):
    def fn(logits, targets, input_lengths, target_lengths):
        lp = torch.log_softmax(logits, -1)
        return F.ctc_loss(
            lp,
            targets,
            torch.as_tensor(input_lengths),
            torch.as_tensor(target_lengths),
            blank,
            reduction,
            zero_infinity,
        )

    return fn


def _ctc_reference(targets, input_lengths, blank, reduction, zero_infinity=False):
    def fn(logits, **_):
        lp = torch.log_softmax(logits, -1)
        if lp.dim() == 2:
            lp = lp.unsqueeze(1)
            loss = ref.ctc(lp, targets, input_lengths, blank, zero_infinity)[0]
        else:
            loss = ref.ctc(lp, targets, input_lengths, blank, zero_infinity)
        return ref.ctc_reduce(loss, [len(t) for t in targets], reduction)

    return fn


def _ctc_wrt(name, zero_infinity):
    # An infinite loss has no gradient to compare unless zero_infinity turns it into 0.
    return ("logits",) if name != "impossible" or zero_infinity else ()


CTC_PARAMS = [
    pytest.param(name, zi, id=f"{name}-zero_infinity" if zi else name)
    for name in CTC_CASES
    for zi in ([False, True] if name == "impossible" else [False])
]


@pytest.mark.parametrize(("name", "zero_infinity"), CTC_PARAMS)
@reductions
@floats
def test_ctc_matches_native(name, zero_infinity, reduction, dtype):
    """Gradients are taken w.r.t. the logits under log_softmax, the path PyTorch's CTC
    backward is written for (see test_ctc_gradient_wrt_log_probs_is_pytorchs)."""
    inputs, _, _, blank = _ctc_inputs(name, dtype)
    check(
        _ctc_mldl(blank, reduction, zero_infinity),
        _ctc_native(blank, reduction, zero_infinity),
        inputs,
        _ctc_wrt(name, zero_infinity),
        tol=EXACT,
    )


@pytest.mark.parametrize(("name", "zero_infinity"), CTC_PARAMS)
@reductions
def test_ctc_matches_brute_force_reference(name, zero_infinity, reduction):
    inputs, targets, input_lengths, blank = _ctc_inputs(name)
    got = check(
        _ctc_mldl(blank, reduction, zero_infinity),
        _ctc_reference(targets, input_lengths, blank, reduction, zero_infinity),
        inputs,
        _ctc_wrt(name, zero_infinity),
        tol=REF,
    )
    if name == "impossible" and reduction == "none":
        assert got[0][0] == (0 if zero_infinity else torch.inf)


@reductions
def test_ctc_gradient_wrt_log_probs_is_pytorchs(reduction):
    """Inherited from PyTorch, not in mldl's docs (pytorch #52241, #82545, #181534): the
    gradient w.r.t. ``log_probs`` itself is the logits' gradient, exp(lp) - γ, not the
    formula's -γ (γ the alignment occupation probabilities). The two differ by exp(lp) on
    every frame within the input length times the output's cotangent, and agree once a
    log_softmax is in the graph (tested above)."""
    inputs, targets, input_lengths, blank = _ctc_inputs("padded")
    lp = torch.log_softmax(inputs.pop("logits"), -1)

    def ref_on_log_probs(log_probs):
        loss = ref.ctc(log_probs, targets, input_lengths, blank)
        return ref.ctc_reduce(loss, [len(t) for t in targets], reduction)

    lp_mine = lp.clone().requires_grad_()
    out = L.ctc(lp_mine, **inputs, blank=blank, reduction=reduction)
    (g_mine,) = torch.autograd.grad(out.sum(), lp_mine)
    lp_ref = lp.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(ref_on_log_probs(lp_ref).sum(), lp_ref)
    # d(out.sum())/d(loss_n): 1 for 'none'/'sum', 1/(N·S_n) for 'mean'
    lengths = torch.tensor([len(t) for t in targets], dtype=F64).clamp(min=1)
    per_seq = {"none": torch.ones(3, dtype=F64), "sum": torch.ones(3, dtype=F64)}.get(
        reduction, 1 / (3 * lengths)
    )
    frames = (torch.arange(lp.shape[0])[:, None] < torch.tensor(input_lengths)[None, :]).to(F64)
    torch.testing.assert_close(g_mine - g_ref, lp.exp() * (frames * per_seq)[..., None], **REF)
    assert not torch.allclose(g_mine, g_ref)
