"""BatchNorm1d/2d/3d: parity with ``torch.nn.BatchNorm*`` (outputs, gradients, running
statistics, eval, state dicts), the notes' formula in float64 (tests/reference.py), the
``stats`` modes, :func:`recompute_statistics` and :func:`freeze_statistics`, and batches with
one value per channel.

Expected values come from PyTorch's own layers, from the float64 reference, or from the
definitions (a frozen layer is a per-channel affine map; dataset statistics are the mean and
unbiased variance of the concatenated layer inputs, computed here without the library).

Comments marked ``# Fixed bug:`` say what the library did before a fix; the tests assert
what it does now.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from mldl import norm as N
from tests import reference as ref

from ._helpers import F32, F64, buffers, data, raises, randomize_parameters, tol

# (mldl class, torch class, input shape)
CASES = [
    (N.BatchNorm1d, nn.BatchNorm1d, (6, 3)),
    (N.BatchNorm1d, nn.BatchNorm1d, (4, 3, 5)),
    (N.BatchNorm2d, nn.BatchNorm2d, (4, 3, 3, 2)),
    (N.BatchNorm3d, nn.BatchNorm3d, (2, 3, 2, 3, 2)),
]
CASE_IDS = ["1d-NC", "1d-NCL", "2d", "3d"]


def _pair(cls, tcls, dtype, **kw):
    ours, theirs = cls(3, dtype=dtype, **kw), tcls(3, dtype=dtype, **kw)
    randomize_parameters(ours)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _step(layer, x, g):
    """Output and (input, weight, bias) gradients of Σ g·layer(x); gradients reset after."""
    x = x.clone().requires_grad_()
    y = layer(x)
    (y * g).sum().backward()
    grads = (x.grad, layer.weight.grad.clone(), layer.bias.grad.clone())
    layer.zero_grad()
    return y.detach(), grads


# ------------------------------------------------------------------ parity with PyTorch


@pytest.mark.parametrize("momentum", [0.1, None], ids=["m0.1", "cumulative"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize(("cls", "tcls", "shape"), CASES, ids=CASE_IDS)
def test_matches_torch_batchnorm(cls, tcls, shape, dtype, momentum):
    ours, theirs = _pair(cls, tcls, dtype, momentum=momentum)
    for _ in range(4):
        x = data(*shape, dtype=dtype)
        g = torch.randn_like(x)
        y1, grads1 = _step(ours, x, g)
        y2, grads2 = _step(theirs, x, g)
        assert_close(y1, y2, **tol(dtype))
        for a, b in zip(grads1, grads2, strict=True):
            assert_close(a, b, **tol(dtype))
    assert_close(ours.running_mean, theirs.running_mean, **tol(dtype))
    assert_close(ours.running_var, theirs.running_var, **tol(dtype))
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4
    ours.eval(), theirs.eval()
    x = data(*shape, dtype=dtype)
    g = torch.randn_like(x)
    y1, grads1 = _step(ours, x, g)
    y2, grads2 = _step(theirs, x, g)
    assert_close(y1, y2, **tol(dtype))
    for a, b in zip(grads1, grads2, strict=True):
        assert_close(a, b, **tol(dtype))


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_without_running_stats_matches_torch_in_eval(dtype):
    ours, theirs = _pair(N.BatchNorm2d, nn.BatchNorm2d, dtype, track_running_stats=False)
    ours.eval(), theirs.eval()
    x = data(3, 3, 2, 2, dtype=dtype)
    assert ours.running_mean is None
    assert_close(ours(x), theirs(x), **tol(dtype))
    assert_close(ours(x), ref.batch_norm(x, ours.weight, ours.bias).to(dtype), **tol(dtype))


def test_state_dict_loads_both_ways():
    theirs = nn.BatchNorm2d(3)
    randomize_parameters(theirs)
    for _ in range(3):
        theirs(data(4, 3, 2, 2, dtype=F32))
    ours = N.BatchNorm2d(3)
    ours.load_state_dict(theirs.state_dict())  # strict: same keys
    ours.eval(), theirs.eval()
    x = data(4, 3, 2, 2, dtype=F32)
    assert_close(ours(x), theirs(x))
    assert int(ours.num_batches_tracked) == 3

    # and back, where the count matters: the cumulative average continues from it
    ours = N.BatchNorm2d(3, momentum=None)
    for _ in range(2):
        ours(data(4, 3, 2, 2, dtype=F32))
    theirs = nn.BatchNorm2d(3, momentum=None)
    theirs.load_state_dict(ours.state_dict())
    x = data(4, 3, 2, 2, dtype=F32)
    assert_close(ours(x), theirs(x))
    assert_close(ours.running_mean, theirs.running_mean)
    assert_close(ours.running_var, theirs.running_var)
    assert int(theirs.num_batches_tracked) == 3


# ------------------------------------------------------------------- float64 reference


@pytest.mark.parametrize("momentum", [0.1, None], ids=["m0.1", "cumulative"])
@pytest.mark.parametrize(("cls", "shape"), [(c[0], c[2]) for c in CASES], ids=CASE_IDS)
def test_matches_float64_reference(cls, shape, momentum):
    bn = cls(3, momentum=momentum, dtype=F64)
    randomize_parameters(bn)
    running_mean, running_var = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    for t in range(1, 4):
        x = data(*shape).requires_grad_()
        g = torch.randn_like(x)
        y = bn(x)
        expected = ref.batch_norm(x, bn.weight, bn.bias, 1e-5)
        assert_close(y, expected)
        (gx,) = torch.autograd.grad((y * g).sum(), x)
        (gx_ref,) = torch.autograd.grad((expected * g).sum(), x)
        assert_close(gx, gx_ref)
        mean, var, m = ref.batch_moments(x.detach())
        factor = 0.1 if momentum is not None else 1.0 / t
        running_mean = ref.running_average(running_mean, mean, factor)
        running_var = ref.running_average(running_var, ref.unbiased(var, m), factor)
        assert_close(bn.running_mean, running_mean)
        assert_close(bn.running_var, running_var)
    bn.eval()
    x = data(*shape)
    assert_close(bn(x), ref.normalize_with(x, running_mean, running_var, bn.weight, bn.bias))


# ------------------------------------------------------------------------- stats modes


def _with_running_stats(bn):
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 3.0]))
        bn.num_batches_tracked.fill_(2)
    return bn


def test_default_stats_is_auto():
    assert N.BatchNorm2d(3).stats == "auto"
    assert set(N.STATS) == {"auto", "batch", "running", "frozen"}


def test_stats_batch_uses_batch_statistics_in_eval_too():
    bn = N.BatchNorm2d(3, stats="batch", dtype=F64)
    randomize_parameters(bn)
    theirs = nn.BatchNorm2d(3, dtype=F64)
    theirs.load_state_dict(bn.state_dict())
    x = data(4, 3, 3, 3)
    assert_close(bn(x), theirs(x))  # training: the running averages still track the batches
    assert_close(bn.running_mean, theirs.running_mean)
    assert_close(bn.running_var, theirs.running_var)
    bn.eval()
    before = buffers(bn)
    x = data(4, 3, 3, 3)
    y = bn(x)
    assert_close(y, ref.batch_norm(x, bn.weight, bn.bias))
    # (and not the running-statistics output, which the test data makes different)
    eval_out = ref.normalize_with(x, bn.running_mean, bn.running_var, bn.weight, bn.bias)
    assert not torch.allclose(y, eval_out, atol=1e-3)
    for k, v in buffers(bn).items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("momentum", [0.1, None], ids=["m0.1", "cumulative"])
def test_stats_running_normalises_with_running_stats_and_keeps_tracking(momentum):
    bn = _with_running_stats(N.BatchNorm2d(3, momentum=momentum, stats="running", dtype=F64))
    randomize_parameters(bn)
    x = data(4, 3, 3, 2)
    before_mean, before_var = bn.running_mean.clone(), bn.running_var.clone()
    eval_twin = copy.deepcopy(bn).eval()
    expected = ref.normalize_with(x, before_mean, before_var, bn.weight, bn.bias)
    assert_close(eval_twin(x), expected)
    bn.train()
    y = bn(x)
    mean, var, m = ref.batch_moments(x)
    factor = 0.1 if momentum is not None else 1.0 / 3
    assert_close(bn.running_mean, ref.running_average(before_mean, mean, factor))
    assert_close(bn.running_var, ref.running_average(before_var, ref.unbiased(var, m), factor))
    assert int(bn.num_batches_tracked) == 3
    # Fixed bug: in training, stats='running' updates the running averages first and then
    # normalises with the updated ones, so the output equals the eval output with the
    # statistics *after* the call (max difference 1.1 from the one before, on this data):
    # the batch's own statistics enter the normalisation (weight `momentum`; the whole
    # weight on the first batch when momentum=None) with no gradient through them, the
    # train/inference mismatch the notes warn about. It should normalise with the running
    # statistics as they were before the call, then update them.
    assert_close(y, expected)


def test_stats_frozen_never_updates_and_is_a_per_channel_affine_map():
    bn = _with_running_stats(N.BatchNorm2d(3, stats="frozen", dtype=F64))
    randomize_parameters(bn)
    before = buffers(bn)
    scale = (bn.weight / torch.sqrt(before["running_var"] + bn.eps)).detach().view(1, 3, 1, 1)
    for _ in range(3):
        x = data(4, 3, 3, 2).requires_grad_()
        g = torch.randn_like(x)
        y = bn(x)
        expected = ref.normalize_with(
            x, before["running_mean"], before["running_var"], bn.weight, bn.bias
        )
        assert_close(y, expected)
        (y * g).sum().backward()
        assert_close(x.grad, g * scale)
    for k, v in buffers(bn).items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("mode", ["running", "frozen", "auto", "batch"])
def test_gradcheck(mode):
    # momentum 0: the running statistics do not move between gradcheck's evaluations.
    # Fixed bug (mode='running'): fails with "one of the variables needed for gradient
    # computation has been modified by an inplace operation"; see
    # test_stats_running_two_forwards_then_one_backward.
    bn = _with_running_stats(N.BatchNorm2d(3, momentum=0.0, stats=mode, dtype=F64))
    before = buffers(bn)
    x = data(3, 3, 2, 2).requires_grad_()
    w = (torch.rand(3, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)

    def f(x, w, b):
        return torch.func.functional_call(bn, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert_close(bn.running_mean, before["running_mean"], atol=0, rtol=0)
    assert_close(bn.running_var, before["running_var"], atol=0, rtol=0)


def test_stats_running_two_forwards_then_one_backward():
    bn = N.BatchNorm2d(3, stats="running")
    a, b = bn(data(4, 3, 2, 2, dtype=F32)), bn(data(4, 3, 2, 2, dtype=F32))
    # Fixed bug: in training, stats='running' normalises with running_mean/running_var
    # (which F.batch_norm saves for the backward) and then updates them in place (lerp_) on
    # the next call, so any graph through two calls before one backward (a layer shared by
    # two branches, D(real) and D(fake) in a GAN, gradcheck) fails with "RuntimeError: one
    # of the variables needed for gradient computation has been modified by an inplace
    # operation". It should normalise with a snapshot (a clone) of the statistics.
    (a.sum() + b.square().sum()).backward()
    assert torch.isfinite(bn.weight.grad).all()


@pytest.mark.parametrize("mode", ["running", "frozen"])
def test_running_modes_need_running_stats(mode):
    with raises(ValueError, "BatchNorm2d", "stats", "track_running_stats"):
        N.BatchNorm2d(3, track_running_stats=False, stats=mode)
    bn = N.BatchNorm2d(3, track_running_stats=False)
    with raises(ValueError, "BatchNorm2d", "stats", "track_running_stats"):
        bn.stats = mode
    assert bn.stats == "auto"
    N.BatchNorm2d(3, track_running_stats=False, stats="batch")  # needs none


# ------------------------------------------------------------- dataset statistics


class _Net(nn.Module):
    """conv -> mldl BatchNorm2d -> relu -> conv -> torch.nn.BatchNorm2d."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = N.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


def _net():
    net = _Net().double()
    randomize_parameters(net.bn1)
    randomize_parameters(net.bn2)
    with torch.no_grad():  # stale statistics, to be replaced
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-3, 3)
            bn.running_var.uniform_(5, 9)
            bn.num_batches_tracked.fill_(7)
    return net


def _loader(sizes):
    """Uneven batches; every other one an (input, label) tuple."""
    out = []
    for k, n in enumerate(sizes):
        x = data(n, 2, 5, 5, scale=3.0, shift=2.0)
        out.append((x, torch.zeros(n)) if k % 2 else x)
    return out


def test_recompute_statistics_gives_exact_dataset_statistics():
    net = _net()
    net.bn1.stats = "frozen"
    net.eval()
    loader = _loader([5, 2, 7, 1, 3])
    # Each layer's inputs during the pass, computed here: the pass normalises every layer
    # with its batch's statistics, as in training.
    seen1, seen2 = [], []
    with torch.no_grad():
        for batch in loader:
            x = batch[0] if isinstance(batch, tuple) else batch
            h = net.conv1(x)
            seen1.append(h)
            seen2.append(net.conv2(torch.relu(ref.batch_norm(h, net.bn1.weight, net.bn1.bias))))

    assert N.recompute_statistics(net, loader) is net

    for layer, seen in ((net.bn1, seen1), (net.bn2, seen2)):
        mean, var, m = ref.batch_moments(torch.cat(seen))
        assert_close(layer.running_mean, mean)
        assert_close(layer.running_var, ref.unbiased(var, m))
        # the test data make the count weighting matter: the mean of batch means differs
        per_batch = torch.stack([ref.batch_moments(s)[0] for s in seen]).mean(0)
        assert not torch.allclose(per_batch, mean, atol=1e-3)
    assert not any(module.training for module in net.modules())
    assert net.bn1.stats == "frozen"


def test_recompute_statistics_restores_training_mode():
    net = _net().train()
    N.recompute_statistics(net, _loader([3, 4]))
    assert all(module.training for module in net.modules())
    assert net.bn1.stats == "auto"


def test_recompute_statistics_restores_each_layers_own_mode():
    # Fixed bug: recompute_statistics ends with model.train(was_training), which sets every
    # submodule to the model's mode: a BN layer put in eval inside a training model (the
    # usual way to keep its statistics fixed while fine-tuning) comes back in training mode
    # and silently starts updating its running averages. Each module's own mode should be
    # restored.
    net = _net().train()
    net.bn2.eval()
    N.recompute_statistics(net, _loader([3, 4]))
    assert net.training and net.bn1.training
    assert not net.bn2.training


def test_recompute_statistics_keeps_the_batch_renorm_schedule():
    brn = N.BatchRenorm2d(3, dtype=F64, **N.BatchRenorm2d.paper_schedule())
    brn.num_batches_tracked.fill_(30000)
    bounds = brn.bounds()
    assert bounds[0] > 1.0 and bounds[1] > 0.0
    conv = nn.Conv2d(2, 3, 3).double()
    loader = _loader([4, 3])
    with torch.no_grad():
        mean, var, m = ref.batch_moments(
            torch.cat([conv(b[0] if isinstance(b, tuple) else b) for b in loader])
        )
    N.recompute_statistics(nn.Sequential(conv, brn), loader)
    assert_close(brn.running_mean, mean)
    assert_close(brn.running_var, ref.unbiased(var, m))
    # Fixed bug: recompute_statistics sets num_batches_tracked to 1 on every layer, but for
    # BatchRenorm that counter is the training step its r_max/d_max schedule reads: after
    # the call bounds() is (1.0, 0.0) again instead of (2.43, 5.0), i.e. the layer silently
    # falls back to plain BatchNorm and re-runs its relaxation from the start.
    assert brn.bounds() == bounds


def test_freeze_statistics_converts_torch_layers_and_freezes():
    torch_bn, ours = nn.BatchNorm2d(3), N.BatchNorm2d(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), torch_bn, nn.ReLU(), ours)
    for _ in range(2):
        model(data(4, 2, 4, 4, dtype=F32))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    x = data(4, 2, 4, 4, dtype=F32)
    eval_out = model(x).detach()

    assert N.freeze_statistics(model, affine=True) is model
    assert type(model[1]) is N.BatchNorm2d
    assert model[1].running_mean is torch_bn.running_mean  # the same tensors, not copies
    assert model[1].stats == model[3].stats == "frozen"
    assert list(model.state_dict()) == list(state)
    for p in (model[1].weight, model[1].bias, model[3].weight, model[3].bias):
        assert not p.requires_grad
    assert model[0].weight.requires_grad

    model.train()
    for _ in range(2):
        x.requires_grad_()
        y = model(x)
        y.square().sum().backward()
    assert_close(y.detach(), eval_out)  # normalises with the stored statistics in training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model[0].weight.grad is not None and model[1].weight.grad is None


def test_freeze_statistics_of_a_bare_torch_layer_returns_its_twin():
    bn = nn.BatchNorm2d(3)
    out = N.freeze_statistics(bn)
    assert out is not bn and type(out) is N.BatchNorm2d and out.stats == "frozen"
    assert out.weight is bn.weight and out.weight.requires_grad  # affine=False: trainable


def test_freeze_statistics_freezes_every_layer_with_running_statistics():
    # Fixed bug: freeze_statistics documents "every batch-norm layer ... never updates
    # them, in training too", but only sets stats='frozen' on BatchNorm; BatchRenorm,
    # MeanOnlyBatchNorm, BatchInstanceNorm and SwitchableNorm (which it finds, and whose
    # affine it does freeze) keep normalising with batch statistics and updating their
    # running averages in training. It should freeze them, or refuse them clearly.
    layers = {
        "BatchRenorm2d": N.BatchRenorm2d(3),
        "MeanOnlyBatchNorm2d": N.MeanOnlyBatchNorm2d(3),
        "BatchInstanceNorm2d": N.BatchInstanceNorm2d(3),
        "SwitchableNorm2d": N.SwitchableNorm2d(3),
    }
    still_updating = []
    for name, layer in layers.items():
        try:
            model = N.freeze_statistics(nn.Sequential(layer))
        except (TypeError, ValueError):
            continue  # refusing is fine
        before = buffers(layer)
        model.train()
        model(data(4, 3, 3, 3, dtype=F32))
        if any(not torch.equal(v, before[k]) for k, v in buffers(layer).items()):
            still_updating.append(name)
    assert still_updating == []


# --------------------------------------------------------- one value per channel

BATCH_STAT_2D = [N.BatchNorm2d, N.BatchRenorm2d, N.BatchInstanceNorm2d, N.SwitchableNorm2d]
BATCH_STAT_IDS = [c.__name__ for c in BATCH_STAT_2D]


@pytest.mark.parametrize("cls", BATCH_STAT_2D, ids=BATCH_STAT_IDS)
def test_one_value_per_channel_in_training_raises(cls):
    layer = cls(3)
    before = {k: v for k, v in buffers(layer).items() if k != "num_batches_tracked"}
    with raises(ValueError, cls.__name__, "input"):
        layer(torch.randn(1, 3, 1, 1))
    for k, v in before.items():
        assert torch.equal(getattr(layer, k), v), k


@pytest.mark.parametrize("cls", [*BATCH_STAT_2D, N.MeanOnlyBatchNorm2d])
def test_1x1_maps_with_a_batch_work_without_nan(cls):
    layer = cls(3)
    randomize_parameters(layer)
    if isinstance(layer, N.BatchInstanceNorm2d):
        with torch.no_grad():
            layer.rho.fill_(0.5)
    x = data(4, 3, 1, 1, dtype=F32).requires_grad_()
    y = layer(x)
    y.square().sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    for name, p in layer.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    for name, b in layer.named_buffers():
        assert torch.isfinite(b.float()).all(), name
    layer.eval()
    assert torch.isfinite(layer(x)).all()


@pytest.mark.parametrize("cls", BATCH_STAT_2D, ids=BATCH_STAT_IDS)
def test_batch_of_one_with_spatial_extent_works(cls):
    layer = cls(3, dtype=F64)
    x = data(1, 3, 4, 4)
    y = layer(x)
    assert torch.isfinite(y).all()
    if cls is N.BatchNorm2d:  # H·W values per channel: ordinary batch statistics
        assert_close(y, ref.batch_norm(x, layer.weight, layer.bias))


@pytest.mark.parametrize("cls", [*BATCH_STAT_2D, N.MeanOnlyBatchNorm2d])
def test_eval_with_a_batch_of_one(cls):
    layer = cls(3, dtype=F64)
    for _ in range(2):
        layer(data(4, 3, 2, 2))
    layer.eval()
    x = data(1, 3, 1, 1)
    y = layer(x)
    assert torch.isfinite(y).all()
    if cls in (N.BatchNorm2d, N.BatchRenorm2d):
        expected = ref.normalize_with(
            x, layer.running_mean, layer.running_var, layer.weight, layer.bias
        )
        assert_close(y, expected)


def test_the_remedy_the_batch_size_error_suggests_works():
    bn = N.BatchNorm2d(3, dtype=F64)
    x = data(1, 3, 1, 1)
    with raises(ValueError, "BatchNorm2d", "input", "stats='running'"):
        bn(x)
    bn.stats = "running"
    # Fixed bug: the error above recommends stats='running' for a batch with one value per
    # channel, but in training 'running' still computes the batch's statistics (to update
    # the running averages) and raises the same ValueError. It normalises with the running
    # statistics, so it should work (skipping the undefined variance update), or the
    # message should not suggest it.
    y = bn(x)
    assert_close(y, ref.normalize_with(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))
