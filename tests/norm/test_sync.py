"""Synchronised batch statistics across processes, on gloo (CPU): every batch-statistic norm,
made synchronised by :func:`mldl.norm.convert_sync` (or ``sync=True``), must compute on each
process exactly what one process computes on the concatenated batch, with UNEQUAL
per-process batches (3 and 5 samples): forward outputs, running statistics, input and
(summed) parameter gradients, eval outputs. A layer left unsynchronised uses its own batch
only, and a group of one process (or no ``torch.distributed`` at all) computes bit for bit as
if it were never synchronised.

One spawn of three processes runs every case: two ranks of a world of 2, and one process in
a world of 1. They save their results with ``torch.save``; the comparisons are made here, in
the test process. A worker's exception is saved as a traceback and re-raised as the
fixture's failure; every process is joined with a deadline and terminated after it, so a
stuck collective cannot hang the run. Under pytest-xdist the test workers share the one
spawn (a file lock; the results lie in the run's shared temporary directory).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from filelock import FileLock
from torch import nn

from mldl import norm
from mldl.norm import convert_sync

F64 = torch.float64
C, H, W = 3, 3, 3
SIZES = (3, 5)  # per-rank batch sizes: unequal on purpose
N = sum(SIZES)
STEPS = 3  # training steps (forward, backward, SGD step on the summed gradients)
LR = 0.1
DEADLINE_S = 150.0  # whole spawn; a normal run takes a fraction of this
RTOL, ATOL = 1e-9, 1e-10  # float64: only summation order differs

# name -> (constructor of the unsynchronised layer, whether ``sync=True`` is passed to the
# constructor instead of going through convert_sync)
CASES = {
    "bn": (lambda: norm.BatchNorm2d(C, dtype=F64), False),
    # cumulative average, and batch statistics in eval too: synchronised in eval as well
    "bn_cumulative_batch": (
        lambda sync=False, group=None: norm.BatchNorm2d(
            C, momentum=None, stats="batch", sync=sync, process_group=group, dtype=F64
        ),
        True,
    ),
    # normalise by the running averages, which track the (synchronised) batches
    "bn_running": (lambda: norm.BatchNorm2d(C, stats="running", dtype=F64), False),
    "bn_torch": (lambda: nn.BatchNorm2d(C, dtype=F64), False),
    "brn_unclipped": (
        lambda: norm.BatchRenorm2d(C, r_max=10.0, d_max=10.0, renorm_momentum=0.3, dtype=F64),
        False,
    ),
    "brn_clipped": (
        lambda: norm.BatchRenorm2d(C, r_max=1.1, d_max=0.05, renorm_momentum=0.3, dtype=F64),
        False,
    ),
    "mobn": (lambda: norm.MeanOnlyBatchNorm2d(C, dtype=F64), False),
    "bin": (lambda: norm.BatchInstanceNorm2d(C, rho=0.3, dtype=F64), False),
    "sn": (lambda: norm.SwitchableNorm2d(C, dtype=F64), False),
}
CASE_NAMES = list(CASES)


# ------------------------------------------------------------------ shared by both sides


def _seed(case: str) -> int:
    return 1000 + CASE_NAMES.index(case)


def _make(case: str, sync: bool, group=None) -> nn.Module:
    """The case's layer, with the same nontrivial parameters and buffers in every process;
    synchronised over ``group`` when ``sync``."""
    build, in_ctor = CASES[case]
    layer = build(sync=sync, group=group) if in_ctor else build()
    g = torch.Generator().manual_seed(_seed(case))
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name == "weight":
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g, dtype=F64))
            elif name == "bias":
                p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=F64))
            elif name == "mean_weight":
                p.copy_(torch.tensor([0.5, -0.3, 0.8]))
            elif name == "var_weight":
                p.copy_(torch.tensor([-0.2, 0.4, 0.1]))
        for name, b in layer.named_buffers():
            if name in ("running_mean", "renorm_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=F64))
            elif name in ("running_var", "renorm_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=F64))
    if sync and not in_ctor:
        layer = convert_sync(layer, group)
    return layer.train()


def _data(case: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """STEPS training batches and one eval batch of N samples (the last SIZES[1] rows drawn
    from another distribution, so that the shards' statistics differ), and the fixed
    cotangents of the training outputs."""
    g = torch.Generator().manual_seed(10 * _seed(case))
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=F64).view(1, C, 1, 1)
    xs = []
    for _ in range(STEPS + 1):
        x = torch.randn(N, C, H, W, generator=g, dtype=F64) + shift
        x[SIZES[0] :] = x[SIZES[0] :] * 1.7 + 0.8
        xs.append(x)
    cots = [torch.randn(N, C, H, W, generator=g, dtype=F64) for _ in range(STEPS)]
    return xs, cots


def _rows(rank: int, world: int) -> slice:
    if world == 1:
        return slice(0, N)
    start = sum(SIZES[:rank])
    return slice(start, start + SIZES[rank])


def _run(layer: nn.Module, case: str, rows: slice, *, reduce: bool) -> dict:
    """Train ``layer`` for STEPS steps on ``rows`` of the case's batches (loss: the sum over
    the rows of <output, cotangent>, so the ranks' losses add up to the whole batch's), the
    parameter gradients summed over the processes when ``reduce``, each step followed by
    an SGD step; then one eval forward. Returns everything to compare."""
    xs, cots = _data(case)
    params = dict(layer.named_parameters())
    out = {"y": [], "xgrad": [], "pgrad": []}
    for step in range(STEPS):
        x = xs[step][rows].clone().requires_grad_(True)
        y = layer(x)
        (y * cots[step][rows]).sum().backward()
        grads = {}
        for name, p in params.items():
            grad = torch.zeros_like(p) if p.grad is None else p.grad.clone()
            if reduce:
                dist.all_reduce(grad)
            grads[name] = grad
        with torch.no_grad():
            for name, p in params.items():
                p.sub_(LR * grads[name])
                p.grad = None
        out["y"].append(y.detach())
        out["xgrad"].append(x.grad)
        out["pgrad"].append(grads)
    out["buffers"] = {name: b.clone() for name, b in layer.named_buffers()}
    out["params"] = {name: p.detach().clone() for name, p in params.items()}
    layer.eval()
    with torch.no_grad():
        out["eval"] = layer(xs[STEPS][rows])
    return out


# ------------------------------------------------------------------------ worker process


def _worker(rank: int, world: int, init_file: str, out_dir: str, tag: str) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=60),
        )
        # every rank creates every group, in the same order
        solo = [dist.new_group([r]) for r in range(world)] if world > 1 else None
        rows = _rows(rank, world)
        results = {}
        for case in CASES:
            res = {
                "sync": _run(_make(case, True), case, rows, reduce=True),
                "local": _run(_make(case, False), case, rows, reduce=False),
            }
            if solo is not None:  # synchronised over a group of one process: this one
                res["solo"] = _run(_make(case, True, solo[rank]), case, rows, reduce=False)
            results[case] = res
        dist.destroy_process_group()
        tmp = Path(out_dir) / f"{tag}.pt.part"
        torch.save(results, tmp)
        os.replace(tmp, Path(out_dir) / f"{tag}.pt")
    except BaseException:
        (Path(out_dir) / f"{tag}.error").write_text(traceback.format_exc())
        raise SystemExit(1) from None


def _wait(procs: dict, out_dir: Path) -> None:
    """Join every process by the deadline; on the first failure, or past the deadline,
    terminate the rest (they would wait in a collective). Problems, the workers' tracebacks
    included, go to ``out_dir / 'FAILED'``."""
    deadline = time.monotonic() + DEADLINE_S
    timed_out = False
    while any(p.is_alive() for p in procs.values()):
        failed = any(p.exitcode not in (None, 0) for p in procs.values())
        if failed or time.monotonic() > deadline:
            timed_out = not failed
            if failed:  # give the others a moment to see the broken connection
                for p in procs.values():
                    p.join(timeout=3)
            break
        time.sleep(0.05)
    for p in procs.values():
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    problems = []
    if timed_out:
        problems.append(f"workers did not finish within {DEADLINE_S:.0f} s; terminated")
    for tag, p in procs.items():
        err = out_dir / f"{tag}.error"
        if err.exists():
            problems.append(f"--- worker {tag} raised:\n{err.read_text()}")
        elif p.exitcode != 0:
            problems.append(f"--- worker {tag} ended with exit code {p.exitcode}")
    if problems:
        (out_dir / "FAILED").write_text("\n".join(problems))


def _spawn(out_dir: Path) -> None:
    ctx = mp.get_context("spawn")
    specs = {
        "r0": (0, 2, out_dir / "rendezvous2"),
        "r1": (1, 2, out_dir / "rendezvous2"),
        "w1": (0, 1, out_dir / "rendezvous1"),
    }
    procs = {}
    try:
        for tag, (rank, world, init) in specs.items():
            procs[tag] = ctx.Process(
                target=_worker, args=(rank, world, str(init), str(out_dir), tag), daemon=True
            )
            procs[tag].start()
    finally:
        _wait(procs, out_dir)


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> dict:
    """{'r0', 'r1' (ranks of a world of 2), 'w1' (a world of 1)}: {case: results}.

    Under pytest-xdist the workers share one spawn (the first to take the lock runs it)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        out_dir = tmp_path_factory.mktemp("sync")
        _spawn(out_dir)
    else:
        out_dir = tmp_path_factory.getbasetemp().parent / f"mldl-norm-sync-{run_id}"
        with FileLock(f"{out_dir}.lock", timeout=DEADLINE_S + 60):
            if not out_dir.exists():
                out_dir.mkdir()
                _spawn(out_dir)
    if (out_dir / "FAILED").exists():
        pytest.fail((out_dir / "FAILED").read_text(), pytrace=False)
    return {tag: torch.load(out_dir / f"{tag}.pt") for tag in ("r0", "r1", "w1")}


@pytest.fixture(scope="module")
def reference() -> dict:
    """One process, unsynchronised, on the concatenated batch."""
    return {case: _run(_make(case, False), case, _rows(0, 1), reduce=False) for case in CASES}


def _close(actual, expected, what: str) -> None:
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


RANKS = ((0, "r0"), (1, "r1"))

# ------------------------------------------------------------- synchronised = concatenated


@pytest.mark.parametrize("case", CASE_NAMES)
def test_forward_matches_concatenated_batch(workers, reference, case):
    for rank, tag in RANKS:
        rows = _rows(rank, 2)
        for step in range(STEPS):
            _close(
                workers[tag][case]["sync"]["y"][step],
                reference[case]["y"][step][rows],
                f"{case} rank {rank} step {step} output",
            )


@pytest.mark.parametrize("case", CASE_NAMES)
def test_running_statistics_and_parameters_match(workers, reference, case):
    ref = reference[case]
    assert ref["buffers"], case
    for _, tag in RANKS:
        got = workers[tag][case]["sync"]
        assert got["buffers"].keys() == ref["buffers"].keys()
        for name, b in ref["buffers"].items():
            if name == "num_batches_tracked":
                assert torch.equal(got["buffers"][name], b), (case, tag)
            else:
                _close(got["buffers"][name], b, f"{case} {tag} buffer {name}")
        for name, p in ref["params"].items():
            _close(got["params"][name], p, f"{case} {tag} parameter {name} after training")
    if case.startswith("brn"):
        assert {"renorm_mean", "renorm_var"} <= ref["buffers"].keys()


@pytest.mark.parametrize("case", CASE_NAMES)
def test_gradients_match(workers, reference, case):
    ref = reference[case]
    for rank, tag in RANKS:
        got = workers[tag][case]["sync"]
        rows = _rows(rank, 2)
        for step in range(STEPS):
            _close(got["xgrad"][step], ref["xgrad"][step][rows], f"{case} {tag} step {step} dx")
            assert got["pgrad"][step].keys() == ref["pgrad"][step].keys()
            for name, g in ref["pgrad"][step].items():
                # the worker's gradients are already summed over the ranks (all_reduce SUM)
                _close(got["pgrad"][step][name], g, f"{case} {tag} step {step} d{name}")


@pytest.mark.parametrize("case", CASE_NAMES)
def test_eval_after_training_matches(workers, reference, case):
    for rank, tag in RANKS:
        _close(
            workers[tag][case]["sync"]["eval"],
            reference[case]["eval"][_rows(rank, 2)],
            f"{case} {tag} eval output",
        )


# ------------------------------------------------------------------------ sync is opt-in


@pytest.mark.parametrize("case", CASE_NAMES)
def test_unsynchronised_layer_uses_local_statistics(workers, reference, case):
    for rank, tag in RANKS:
        rows = _rows(rank, 2)
        got = workers[tag][case]["local"]
        local = _run(_make(case, False), case, rows, reduce=False)  # this shard, alone
        for step in range(STEPS):
            _close(got["y"][step], local["y"][step], f"{case} {tag} step {step} local output")
        for name, b in local["buffers"].items():
            _close(got["buffers"][name], b, f"{case} {tag} local buffer {name}")
        gap = max(
            (got["y"][s] - reference[case]["y"][s][rows]).abs().max().item() for s in range(STEPS)
        )
        assert gap > 1e-3, f"{case} {tag}: the unsynchronised output equals the synchronised one"


# --------------------------------------------------------------------- one process: no-op


def _assert_identical(a: dict, b: dict, what: str) -> None:
    for key in ("y", "xgrad", "pgrad"):
        for step in range(STEPS):
            x, y = a[key][step], b[key][step]
            if isinstance(x, dict):
                assert x.keys() == y.keys()
                for name in x:
                    assert torch.equal(x[name], y[name]), f"{what}: {key}[{step}] {name}"
            else:
                assert torch.equal(x, y), f"{what}: {key}[{step}]"
    for key in ("buffers", "params"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{what}: {key} {name}"
    assert torch.equal(a["eval"], b["eval"]), f"{what}: eval"


@pytest.mark.parametrize("case", CASE_NAMES)
def test_world_of_one_is_exactly_unsynchronised(workers, reference, case):
    w1 = workers["w1"][case]
    _assert_identical(w1["sync"], w1["local"], f"{case}: world of 1")
    for step in range(STEPS):  # and it is the whole batch's computation
        _close(w1["sync"]["y"][step], reference[case]["y"][step], f"{case} world of 1")
    for _, tag in RANKS:  # a group of one process inside a larger world
        res = workers[tag][case]
        _assert_identical(res["solo"], res["local"], f"{case} {tag}: group of 1")


@pytest.mark.parametrize("case", CASE_NAMES)
def test_without_distributed_is_exactly_unsynchronised(case):
    if dist.is_available() and dist.is_initialized():
        pytest.skip("torch.distributed is initialised in this process")
    rows = _rows(0, 1)
    synced = _make(case, True)
    assert synced.sync
    _assert_identical(
        _run(synced, case, rows, reduce=False),
        _run(_make(case, False), case, rows, reduce=False),
        f"{case}: no torch.distributed",
    )


# -------------------------------------------------------------- the cases test something


@pytest.mark.parametrize("case, clipped", [("brn_unclipped", False), ("brn_clipped", True)])
def test_renorm_cases_have_the_intended_r_and_d(case, clipped):
    """r and d are unclipped and far from (1, 0) in one case (so the synchronised moments
    enter them), clipped in the other, at every step of the concatenated run."""
    layer = _make(case, False)
    xs, _ = _data(case)
    for step in range(STEPS):
        var, mean = torch.var_mean(xs[step], dim=(0, 2, 3), correction=0)
        sigma = torch.sqrt(layer.renorm_var + layer.eps)
        r = torch.sqrt(var + layer.eps) / sigma
        d = (mean - layer.renorm_mean) / sigma
        if clipped:
            assert bool(((r > layer.r_max) | (r < 1 / layer.r_max)).any()), (step, r)
            assert bool((d.abs() > layer.d_max).any()), (step, d)
        else:
            assert bool(((r < layer.r_max) & (r > 1 / layer.r_max)).all()), (step, r)
            assert bool((d.abs() < layer.d_max).all()), (step, d)
            assert (r - 1).abs().max() > 0.1 and d.abs().max() > 0.1, (step, r, d)
        with torch.no_grad():
            layer(xs[step])  # advances the renorm averages


# -------------------------------------------------------------------------- convert_sync


def test_convert_sync_keeps_state_dict_and_sets_sync():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.BatchNorm2d(4, momentum=None), norm.BatchRenorm2d(4)),
        norm.SwitchableNorm2d(4),
        norm.BatchInstanceNorm2d(4),
        norm.MeanOnlyBatchNorm2d(4),
        nn.GroupNorm(2, 4),
        nn.Flatten(),
        nn.BatchNorm1d(4 * 4 * 4),
        nn.SyncBatchNorm(4 * 4 * 4),
    )
    model(torch.randn(5, 2, 6, 6))  # nontrivial running statistics
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    group = object()  # convert_sync only stores the group
    out = convert_sync(model, process_group=group)
    assert out is model
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    converted = [
        model[1],
        model[2][0],
        model[2][1],
        model[3],
        model[4],
        model[5],
        model[8],
        model[9],
    ]
    for layer in converted:
        assert type(layer).__module__.startswith("mldl.norm"), type(layer)
        assert layer.sync is True and layer.process_group is group, layer
        assert not layer.training
    assert isinstance(model[1], norm.BatchNorm2d) and isinstance(model[8], norm.BatchNorm1d)
    assert model[2][0].momentum is None
    assert not hasattr(model[6], "sync")  # GroupNorm has no batch statistics
    assert isinstance(model[0], nn.Conv2d)
    # a bare PyTorch layer becomes a new, synchronised twin sharing its tensors
    bn = nn.BatchNorm2d(3)
    twin = convert_sync(bn)
    assert twin is not bn and isinstance(twin, norm.BatchNorm2d) and twin.sync
    assert twin.weight is bn.weight and twin.running_mean is bn.running_mean
    assert twin.process_group is None
