"""Every loss module equals its function form: same options, same values, same gradients
(w.r.t. inputs, and w.r.t. DistanceMatchLoss's learned parameters), with non-default
options and with the defaults."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mldl import losses as L
from tests import reference as ref

from ._parity import EXACT, REDUCTIONS, REF, check, one_thread

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _x(*shape):
    return torch.randn(*shape, dtype=F64)


def _signs(n):
    return torch.tensor([1.0, -1.0] * (n // 2) + [1.0] * (n % 2), dtype=F64)


def _class_targets(n, k, ignore=None):
    t = torch.randint(0, k, (n,))
    if ignore is not None:
        t[1::3] = ignore
        t[0] = 0
    return t


def _cosine_distance(x, y):
    return 1 - F.cosine_similarity(x, y, dim=-1)


def _ctc_inputs():
    return {
        "log_probs": torch.log_softmax(_x(5, 2, 3), -1),
        "targets": torch.tensor([[0, 1], [1, 1]]),  # blank is 2 below
        "input_lengths": [5, 4],
        "target_lengths": [2, 2],
    }


# name -> (module factory, function with the same options, inputs factory, gradient inputs).
# Each factory takes the reduction.
CASES = {
    "L1Loss": (
        lambda r: L.L1Loss(r),
        lambda r, input, target, weight: L.l1(input, target, r, weight=weight),
        lambda: {"input": _x(4, 3), "target": _x(4, 3), "weight": torch.rand(3, dtype=F64)},
        ("input", "target"),
    ),
    "MSELoss": (
        lambda r: L.MSELoss(r),
        lambda r, input, target, weight: L.mse(input, target, r, weight=weight),
        lambda: {"input": _x(4, 3), "target": _x(4, 3), "weight": torch.rand(4, 1, dtype=F64)},
        ("input", "target"),
    ),
    "SmoothL1Loss": (
        lambda r: L.SmoothL1Loss(r, beta=0.5),
        lambda r, input, target, weight: L.smooth_l1(input, target, r, 0.5, weight=weight),
        lambda: {"input": _x(4, 3), "target": _x(4, 3), "weight": torch.rand(4, 3, dtype=F64)},
        ("input", "target"),
    ),
    "HuberLoss": (
        lambda r: L.HuberLoss(r, delta=2.0),
        lambda r, input, target, weight: L.huber(input, target, r, 2.0, weight=weight),
        lambda: {"input": _x(4, 3), "target": _x(4, 3), "weight": torch.rand(4, 3, dtype=F64)},
        ("input", "target"),
    ),
    "PoissonNLLLoss": (
        lambda r: L.PoissonNLLLoss(log_input=False, full=True, eps=0.1, reduction=r),
        lambda r, **a: L.poisson_nll(**a, log_input=False, full=True, eps=0.1, reduction=r),
        lambda: {
            "input": torch.rand(5, 2, dtype=F64),
            "target": torch.poisson(torch.full((5, 2), 3.0, dtype=F64)),
        },
        ("input",),
    ),
    "GaussianNLLLoss": (
        lambda r: L.GaussianNLLLoss(full=True, eps=0.1, reduction=r),
        lambda r, **a: L.gaussian_nll(**a, full=True, eps=0.1, reduction=r),
        lambda: {"input": _x(4, 3), "target": _x(4, 3), "var": torch.rand(4, 1, dtype=F64)},
        ("input", "target", "var"),
    ),
    "NLLLoss": (
        lambda r: L.NLLLoss(torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64), 1, r),
        lambda r, **a: L.nll(
            **a, weight=torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64), ignore_index=1, reduction=r
        ),
        lambda: {"input": torch.log_softmax(_x(6, 4), 1), "target": _class_targets(6, 4, ignore=1)},
        ("input",),
    ),
    "CrossEntropyLoss": (
        lambda r: L.CrossEntropyLoss(
            torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64), 1, r, 0.2, smoothing="others"
        ),
        lambda r, **a: L.cross_entropy(
            **a,
            weight=torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64),
            ignore_index=1,
            reduction=r,
            label_smoothing=0.2,
            smoothing="others",
        ),
        lambda: {"input": 3 * _x(6, 4, 2), "target": torch.randint(0, 4, (6, 2))},
        ("input",),
    ),
    "BCELoss": (
        lambda r: L.BCELoss(
            torch.tensor([1.0, 2.0, 0.5], dtype=F64), r, label_smoothing=0.1, smoothing="flip"
        ),
        lambda r, **a: L.bce(
            **a,
            weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            reduction=r,
            label_smoothing=0.1,
            smoothing="flip",
        ),
        lambda: {
            "input": 0.05 + 0.9 * torch.rand(4, 3, dtype=F64),
            "target": torch.rand(4, 3, dtype=F64),
        },
        ("input", "target"),
    ),
    "BCEWithLogitsLoss": (
        lambda r: L.BCEWithLogitsLoss(
            torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            r,
            torch.tensor([3.0, 1.0, 0.5], dtype=F64),
            label_smoothing=0.1,
            smoothing="half",
        ),
        lambda r, **a: L.bce_with_logits(
            **a,
            weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            reduction=r,
            pos_weight=torch.tensor([3.0, 1.0, 0.5], dtype=F64),
            label_smoothing=0.1,
            smoothing="half",
        ),
        lambda: {"input": 3 * _x(4, 3), "target": torch.rand(4, 3, dtype=F64)},
        ("input", "target"),
    ),
    "FocalLoss": (
        lambda r: L.FocalLoss(
            1.5,
            torch.tensor([0.25, 0.75, 0.5], dtype=F64),
            torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            1,
            r,
            0.1,
            smoothing="others",
        ),
        lambda r, **a: L.focal(
            **a,
            gamma=1.5,
            alpha=torch.tensor([0.25, 0.75, 0.5], dtype=F64),
            weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            ignore_index=1,
            reduction=r,
            label_smoothing=0.1,
            smoothing="others",
        ),
        lambda: {"input": 3 * _x(7, 3), "target": _class_targets(7, 3, ignore=1)},
        ("input",),
    ),
    "SigmoidFocalLoss": (
        lambda r: L.SigmoidFocalLoss(
            1.5, 0.25, torch.tensor([1.0, 2.0, 0.5], dtype=F64), -1, r, 0.1, smoothing="uniform"
        ),
        lambda r, **a: L.sigmoid_focal(
            **a,
            gamma=1.5,
            alpha=0.25,
            weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            ignore_index=-1,
            reduction=r,
            label_smoothing=0.1,
            smoothing="uniform",
        ),
        lambda: {
            "input": 3 * _x(4, 3),
            "target": torch.tensor(
                [[1.0, 0.0, -1.0], [0.3, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.5, 1.0]], dtype=F64
            ),
        },
        ("input",),
    ),
    "KLDivLoss": (
        lambda r: L.KLDivLoss(r, log_target=True),
        lambda r, **a: L.kl_div(**a, reduction=r, log_target=True),
        lambda: {"input": torch.log_softmax(_x(4, 3), 1), "target": torch.log_softmax(_x(4, 3), 1)},
        ("input", "target"),
    ),
    "HingeEmbeddingLoss": (
        lambda r: L.HingeEmbeddingLoss(0.5, r),
        lambda r, **a: L.hinge_embedding(**a, margin=0.5, reduction=r),
        lambda: {"input": _x(6), "target": _signs(6)},
        ("input",),
    ),
    "CosineEmbeddingLoss": (
        lambda r: L.CosineEmbeddingLoss(0.2, r),
        lambda r, **a: L.cosine_embedding(**a, margin=0.2, reduction=r),
        lambda: {"input1": _x(6, 3), "input2": _x(6, 3), "target": _signs(6)},
        ("input1", "input2"),
    ),
    "MarginRankingLoss": (
        lambda r: L.MarginRankingLoss(0.3, r),
        lambda r, **a: L.margin_ranking(**a, margin=0.3, reduction=r),
        lambda: {"input1": _x(6), "input2": _x(6), "target": _signs(6)},
        ("input1", "input2"),
    ),
    "SoftMarginLoss": (
        lambda r: L.SoftMarginLoss(r),
        lambda r, **a: L.soft_margin(**a, reduction=r),
        lambda: {"input": 3 * _x(6), "target": _signs(6)},
        ("input",),
    ),
    "MultiLabelMarginLoss": (
        lambda r: L.MultiLabelMarginLoss(r),
        lambda r, **a: L.multilabel_margin(**a, reduction=r),
        lambda: {
            "input": _x(3, 4),
            "target": torch.tensor([[3, 0, -1, 1], [1, -1, 2, 2], [0, 1, 2, 3]]),
        },
        ("input",),
    ),
    "Top2MarginLoss": (
        lambda r: L.Top2MarginLoss(0.5, torch.tensor([1.0, 2.0, 0.5], dtype=F64), 1, r, p=2),
        lambda r, **a: L.top2_margin(
            **a,
            margin=0.5,
            weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64),
            ignore_index=1,
            reduction=r,
            p=2,
        ),
        lambda: {"input": _x(7, 3), "target": _class_targets(7, 3, ignore=1)},
        ("input",),
    ),
    "TripletMarginLoss": (
        lambda r: L.TripletMarginLoss(0.5, 1.0, 1e-3, True, r),
        lambda r, **a: L.triplet_margin(**a, margin=0.5, p=1.0, eps=1e-3, swap=True, reduction=r),
        lambda: {"anchor": _x(5, 3), "positive": _x(5, 3), "negative": _x(5, 3)},
        ("anchor", "positive", "negative"),
    ),
    "TripletMarginWithDistanceLoss": (
        lambda r: L.TripletMarginWithDistanceLoss(
            distance_function=_cosine_distance, margin=0.4, swap=True, reduction=r
        ),
        lambda r, **a: L.triplet_margin_with_distance(
            **a, distance_function=_cosine_distance, margin=0.4, swap=True, reduction=r
        ),
        lambda: {"anchor": _x(5, 3), "positive": _x(5, 3), "negative": _x(5, 3)},
        ("anchor", "positive", "negative"),
    ),
    "DistanceMatchLoss": (
        lambda r: L.DistanceMatchLoss(scale=2.0, offset=1.0, p=1.0, eps=1e-4, reduction=r),
        lambda r, **a: L.distance_match(**a, scale=2.0, offset=1.0, p=1.0, eps=1e-4, reduction=r),
        lambda: {"x1": _x(6, 3), "x2": _x(6, 3), "target": torch.tensor([1, 0, 1, 1, 0, 0])},
        ("x1", "x2"),
    ),
    "CTCLoss": (
        lambda r: L.CTCLoss(blank=2, reduction=r, zero_infinity=True),
        lambda r, **a: L.ctc(**a, blank=2, reduction=r, zero_infinity=True),
        _ctc_inputs,
        ("log_probs",),
    ),
}


def _reduction_for(name, reduction):
    # KL's 'mean' is not the KL divergence (PyTorch warns); its module is tested with
    # 'batchmean' in that slot.
    return "batchmean" if name == "KLDivLoss" and reduction == "mean" else reduction


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_equals_function(name, reduction):
    make_module, fn, make_inputs, wrt = CASES[name]
    r = _reduction_for(name, reduction)
    module = make_module(r)
    check(lambda **a: module(**a), lambda **a: fn(r, **a), make_inputs(), wrt, tol=EXACT)


DEFAULTS = {
    "L1Loss": L.l1,
    "MSELoss": L.mse,
    "SmoothL1Loss": L.smooth_l1,
    "HuberLoss": L.huber,
    "PoissonNLLLoss": L.poisson_nll,
    "GaussianNLLLoss": L.gaussian_nll,
    "NLLLoss": L.nll,
    "CrossEntropyLoss": L.cross_entropy,
    "BCELoss": L.bce,
    "BCEWithLogitsLoss": L.bce_with_logits,
    "FocalLoss": L.focal,
    "SigmoidFocalLoss": L.sigmoid_focal,
    "HingeEmbeddingLoss": L.hinge_embedding,
    "CosineEmbeddingLoss": L.cosine_embedding,
    "MarginRankingLoss": L.margin_ranking,
    "SoftMarginLoss": L.soft_margin,
    "MultiLabelMarginLoss": L.multilabel_margin,
    "Top2MarginLoss": L.top2_margin,
    "TripletMarginLoss": L.triplet_margin,
    "TripletMarginWithDistanceLoss": L.triplet_margin_with_distance,
    "DistanceMatchLoss": L.distance_match,
    "CTCLoss": L.ctc,
}


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_module_defaults_equal_function_defaults(name):
    """``Module()(...)`` is ``function(...)``: the two forms share their defaults."""
    _, _, make_inputs, wrt = CASES[name]
    inputs = make_inputs()
    if name in ("L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss"):
        del inputs["weight"]
    if name == "SigmoidFocalLoss":
        inputs["target"] = inputs["target"].clamp(min=0)
    if name == "CTCLoss":
        inputs["targets"] = torch.tensor([[1, 2], [2, 2]])  # blank 0 by default
    module = getattr(L, name)()
    check(lambda **a: module(**a), lambda **a: DEFAULTS[name](**a), inputs, wrt, tol=EXACT)


def test_kl_div_module_default_matches_function():
    inputs = {"input": torch.log_softmax(_x(4, 3), 1), "target": torch.softmax(_x(4, 3), 1)}
    with pytest.warns(UserWarning, match="batchmean"):
        check(
            lambda **a: L.KLDivLoss()(**a), lambda **a: L.kl_div(**a), inputs, ("input",), tol=EXACT
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distance_match_module_learns_scale_and_offset(reduction):
    """DistanceMatchLoss keeps s = exp(log_scale) and b = offset as parameters, started at the
    given values; their gradients are the reference's (by the chain rule through exp)."""
    module = L.DistanceMatchLoss(scale=2.0, offset=1.0, p=2.0, reduction=reduction)
    torch.testing.assert_close(module.scale.detach(), torch.tensor(2.0))
    torch.testing.assert_close(module.log_scale.detach(), torch.tensor(math.log(2.0)))
    module = module.double()
    x1, x2, t = _x(6, 3), _x(6, 3), torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=F64)
    out = module(x1, x2, t)
    g = torch.rand(out.shape, dtype=F64) + 0.5
    grads = torch.autograd.grad(out, [module.log_scale, module.offset], g)

    log_s = module.log_scale.detach().clone().requires_grad_()
    b = module.offset.detach().clone().requires_grad_()
    want = ref.reduce(ref.distance_match(x1, x2, t, log_s.exp(), b), reduction)
    torch.testing.assert_close(out.detach(), want.detach(), **REF)
    want_grads = torch.autograd.grad(want, [log_s, b], g)
    for got_g, want_g in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got_g, want_g, **REF)
    p = module.probability(x1, x2)
    torch.testing.assert_close(p, L.match_probability(x1, x2, module.scale, module.offset), **EXACT)
