"""Claims of the notes' normalization section about reparametrised weights and about which
statistics a batch-normalised network should use: spectral normalization bounds the Lipschitz
constant, weight normalization works best with mean-only batch normalization, and a network
fine-tuned with small batches should keep its original dataset's statistics.

The convolutional claims share one small CNN for the 8x8 digits (:func:`_cnn`): three 3x3
convolutions (at 8x8, then with a stride of 2 to 4x4, then at 4x4), each followed by its
normalization (none, batch norm, or mean-only batch norm) and a ReLU, global average
pooling and a linear layer. The initial weights of a seed are drawn once (:func:`_draw`)
and shared by every variant of that seed, so that variants differ only in their
normalization (a paired design).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ... import losses
from ...norm import (
    BatchNorm2d,
    MeanOnlyBatchNorm2d,
    freeze_statistics,
    init_weight_norm_,
    recompute_statistics,
    spectral_norm,
    spectral_sigma,
    weight_norm,
)
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import mean as _mean
from ..stats import sd as _sd
from ..stats import t_halfwidth
from ..train import accuracy, logits_of, mlp

SECTION_SN = "Normalization: spectral normalization"
SECTION_WN = "Normalization: weight normalization"
SECTION_BN = "Normalization: batch normalization (fine-tuning)"


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return losses.cross_entropy(logits, target)


def _train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ctx: Context,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    stream: int,
    desc: str,
) -> list[float]:
    """``lab.train.fit`` with the fused Adam kernel (the same update, fewer passes over the
    parameters): cross-entropy on shuffled mini-batches drawn from ``ctx.generator(stream)``;
    only the parameters that require gradients are optimised. Returns each epoch's mean
    training loss."""
    model.to(ctx.device).train()
    x, y = x.to(ctx.device), y.to(ctx.device)
    g = ctx.generator(stream)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    history = []
    for _ in ctx.steps(range(epochs), desc, total=epochs):
        order = torch.randperm(len(x), generator=g).to(ctx.device)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = _ce(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(x))
    return history


@contextlib.contextmanager
def _seeded(ctx: Context, stream: int) -> Iterator[None]:
    """Seed the global generator for code that draws from it (PyTorch's spectral norm draws
    its power-iteration vectors there), leaving the caller's global state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed * 1_000_003 + stream)
        yield


# ------------------------------------------------------------------------ the digits CNN


KINDS = ("plain", "wn", "bn", "wn_mean_only")
LABELS = {
    "plain": "plain",
    "wn": "WN",
    "bn": "BN",
    "wn_mean_only": "WN + mean-only BN",
}
# The weight-norm paper's CIFAR-10 test errors (%), reference/norms.md §1.6.
PAPER_ERROR = {"plain": 8.43, "wn": 8.46, "bn": 8.05, "wn_mean_only": 7.31}


def _draw(g: torch.Generator, widths: tuple[int, ...], classes: int) -> list[tuple[Tensor, Tensor]]:
    """Initial (weight, bias) of each convolution and of the linear layer, drawn as PyTorch
    draws them (uniform in ±1/√fan_in) from ``g``."""
    shapes = []
    c_in = 1
    for c_out in widths:
        shapes.append((c_out, c_in, 3, 3))
        c_in = c_out
    shapes.append((classes, c_in))
    out = []
    for shape in shapes:
        fan_in = math.prod(shape[1:])
        bound = 1 / math.sqrt(fan_in)
        w = (torch.rand(shape, generator=g) * 2 - 1) * bound
        b = (torch.rand(shape[0], generator=g) * 2 - 1) * bound
        out.append((w, b))
    return out


def _cnn(kind: str, draws: list[tuple[Tensor, Tensor]]) -> nn.Sequential:
    """The digits CNN with the given initial weights. ``plain``: convolutions with biases, no
    normalization; ``bn``: conv (no bias) -> BatchNorm2d; ``wn``: weight-normalised
    convolutions with biases; ``wn_mean_only``: weight-normalised conv (no bias) ->
    MeanOnlyBatchNorm2d (which carries the bias). The linear layer is weight-normalised in
    both WN variants. Call :func:`_data_dependent_init` on the WN variants before training."""
    layers: list[nn.Module] = []
    convs = draws[:-1]
    for i, (w, b) in enumerate(convs):
        c_out, c_in = w.shape[:2]
        biased = kind in ("plain", "wn")
        stride = 2 if i == 1 else 1
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=biased)
        with torch.no_grad():
            conv.weight.copy_(w)
            if biased:
                conv.bias.copy_(b)
        if kind in ("wn", "wn_mean_only"):
            conv = weight_norm(conv)
        layers.append(conv)
        if kind == "bn":
            layers.append(BatchNorm2d(c_out))
        elif kind == "wn_mean_only":
            layers.append(MeanOnlyBatchNorm2d(c_out))
        layers.append(nn.ReLU())
    w, b = draws[-1]
    head = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        head.weight.copy_(w)
        head.bias.copy_(b)
    if kind in ("wn", "wn_mean_only"):
        head = weight_norm(head)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), head]
    return nn.Sequential(*layers)


@torch.no_grad()
def _data_dependent_init(model: nn.Module, x: Tensor) -> None:
    """The weight-norm paper's initialisation, layer by layer in one forward pass of ``x``:
    each weight-normalised layer, when it first sees its input, sets g and b so that its
    pre-activations on this batch have zero mean and unit variance (``init_weight_norm_``);
    the layers after it see the initialised outputs. Mean-only BN layers' running means,
    moved by this pass, are reset."""
    handles: dict[nn.Module, Any] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        handles.pop(module).remove()  # before init_weight_norm_ calls the module itself
        init_weight_norm_(module, args[0])

    for module in model.modules():
        if parametrize.is_parametrized(module, "weight") and hasattr(
            module.parametrizations.weight, "original0"
        ):
            handles[module] = module.register_forward_pre_hook(hook)
    model.train()
    model(x)
    for module in model.modules():
        if isinstance(module, MeanOnlyBatchNorm2d):
            # (its reset_running_stats() raises: it fills running_var, which it has not)
            module.running_mean.zero_()
            module.num_batches_tracked.zero_()


# ------------------------------------------------------------------ spectral normalization

SN_BAND = (0.9, 1.1)
SN_NETS = ("sn", "sn5", "plain")
SN_LABELS = {
    "sn": "spectral_norm, 1 power step / update",
    "sn5": "spectral_norm, 5 power steps / update",
    "plain": "unnormalised twin",
}


def _decide_spectral(n: dict) -> tuple[str, str]:
    lo, hi = n["band"]
    sn_min, sn_max = n["sigma_min"]["sn"], n["sigma_max"]["sn"]
    plain_end = n["plain_sigma_max_final"]
    product = n["sigma_product_final"]
    jac, pair = n["max_jacobian_norm"], n["max_pair_ratio"]
    in_band = sn_min >= lo and sn_max <= hi
    bounded = max(jac["sn"], pair["sn"]) <= product["sn"] * (1 + 1e-4)
    grows = plain_end > hi
    reason = (
        f"over {n['seeds']} seeds and {n['steps']} updates, the exact σ of the spectrally "
        f"normalised layers (1 power step per update) ranged over [{sn_min:.3f}, "
        f"{sn_max:.3f}] (band [{lo}, {hi}]; with 5 steps: [{n['sigma_min']['sn5']:.3f}, "
        f"{n['sigma_max']['sn5']:.3f}]); the unnormalised twin's largest layer σ ended at "
        f"{plain_end:.2f} or more (product over layers {product['plain']:.1f}, from "
        f"{n['plain_sigma_product_initial']:.2f} at the start). SN network: largest Jacobian "
        f"norm {jac['sn']:.3f}, largest pair ratio ‖f(x)-f(x')‖/‖x-x'‖ {pair['sn']:.3f}, "
        f"product of its σ's {product['sn']:.3f} (plain: {jac['plain']:.1f}, "
        f"{pair['plain']:.1f})"
    )
    if not in_band or not bounded:
        why = (
            "σ left the band: one power step per update lags behind the weights"
            if not in_band
            else "a Lipschitz estimate exceeded the σ product"
        )
        return verdict(False, reason + f" — {why}")
    if not grows:
        return verdict(
            False,
            reason + " — σ stayed in the band, but so did the plain twin's: nothing shows "
            "the normalization was needed",
            inconclusive=True,
        )
    return verdict(True, reason)


@claim(
    id="norm.spectral_lipschitz",
    section=SECTION_SN,
    statement='Spectral normalization: "The authors restrict the Lipschitz constant by '
    "normalizing the weight matrices by their largest eigenvalue (or their spectral norm - "
    "hence the name). The largest eigenvalue is computed using the power method which makes "
    'the computational cost of this method very cheap."',
    method="Train the lab's MLP (64 → 64 → 64 → 10, ReLU) on the digits with Adam (lr 1e-3, "
    "batches of 64) from the same initial weights and mini-batches three times: with "
    "mldl.norm.spectral_norm on every linear layer (PyTorch's parametrization: one "
    "power-iteration step per training forward, the vectors persisted: the judged setting), "
    "the same with 5 steps per forward (reported), and without normalization. Every few "
    "updates, right after the forward (and its power step) and before the optimizer moves "
    "the weight, record each layer's exact largest singular value (mldl.norm.spectral_sigma, "
    "by SVD, of the weight that forward used), and once more after the last update (the "
    "weight eval mode uses). Then, on the test digits, estimate each network's Lipschitz "
    "constant from below twice: the largest spectral norm of the input-output Jacobian (the "
    "exact local constant of a ReLU network) and the largest ‖f(x) - f(x')‖ / ‖x - x'‖ over "
    "random pairs (half of them two test digits, half a test digit and a small random "
    "perturbation of it). The product of the layers' σ bounds both (ReLU is 1-Lipschitz).",
    criterion=f"Supported if, for every seed and every recorded step, every layer's σ with "
    f"one power step per update lies in [{SN_BAND[0]}, {SN_BAND[1]}], both Lipschitz "
    f"estimates of that network are at most the product of its σ's, and the unnormalised "
    f"twin's largest layer σ at the end is above {SN_BAND[1]} for every seed (the constraint "
    f"does something). Not supported if a σ leaves the band or an estimate exceeds the "
    f"product; inconclusive if the plain twin's σ stays in the band too.",
    decide=_decide_spectral,
)
def spectral_lipschitz(ctx: Context) -> Evidence:
    from ..data import digits

    split = digits(ctx.seed)
    seeds = ctx.pick(2, 3, 5)
    epochs = ctx.pick(2, 10, 60)
    every = ctx.pick(4, 5, 20)
    pairs = ctx.pick(200, 4000, 20000)
    hidden, batch, lr = 64, 64, 1e-3
    x, y = split.x_train.to(ctx.device), split.y_train.to(ctx.device)
    n = len(x)
    # traces[net][seed][layer][point]: σ of each layer at each recorded step
    traces: dict[str, list[list[list[float]]]] = {k: [] for k in SN_NETS}
    record_steps: list[int] = []
    jac_max: dict[str, list[float]] = {k: [] for k in SN_NETS}
    jac_all: dict[str, list[float]] = {k: [] for k in SN_NETS}
    pair_max: dict[str, list[float]] = {k: [] for k in SN_NETS}
    products: dict[str, list[float]] = {k: [] for k in SN_NETS}
    acc: dict[str, list[float]] = {k: [] for k in SN_NETS}
    gap: dict[str, list[list[float]]] = {k: [] for k in SN_NETS}  # σ2/σ1 per layer, at the end
    plain_initial_products = []
    for r in range(seeds):
        with _seeded(ctx, 100 + r):  # the initial weights, and the power iterations' vectors
            base = mlp(64, hidden, 10, depth=2)
            nets = {k: copy.deepcopy(base) for k in SN_NETS}
            for key, iterations in (("sn", 1), ("sn5", 5)):
                for layer in nets[key]:
                    if isinstance(layer, nn.Linear):
                        spectral_norm(layer, n_power_iterations=iterations)
        linears = {k: [m for m in net if isinstance(m, nn.Linear)] for k, net in nets.items()}
        plain_initial_products.append(math.prod(float(spectral_sigma(m)) for m in linears["plain"]))
        for key, net in nets.items():
            net.to(ctx.device).train()
            g = ctx.generator(200 + r)  # the same batches for the three
            optimizer = torch.optim.Adam(net.parameters(), lr=lr, fused=True)
            trace: list[list[float]] = [[] for _ in linears[key]]
            steps_here: list[int] = []

            def record(step: int, layers=linears[key], trace=trace, steps=steps_here) -> None:
                steps.append(step)
                for i, m in enumerate(layers):
                    trace[i].append(float(spectral_sigma(m)))

            step = 0
            for _ in ctx.steps(range(epochs), f"spectral norm seed {r} ({key}): epochs"):
                order = torch.randperm(n, generator=g).to(ctx.device)
                for start in range(0, n, batch):
                    idx = order[start : start + batch]
                    optimizer.zero_grad()
                    _ce(net(x[idx]), y[idx]).backward()
                    if step % every == 0:
                        # after this update's forward (and its power step), before the
                        # optimizer moves the weight: σ of the weight this forward used
                        record(step)
                    optimizer.step()
                    step += 1
            record(step)  # the weight after the last update, as eval mode uses it
            traces[key].append(trace)
            record_steps = steps_here
            jac, ratio = _lipschitz(net, split.x_test, pairs, ctx, r)
            jac_max[key].append(float(jac.max()))
            jac_all[key] += jac.tolist()
            pair_max[key].append(ratio)
            products[key].append(math.prod(t[-1] for t in trace))
            acc[key].append(accuracy(logits_of(net, split.x_test, ctx), split.y_test))
            gap[key].append([_second_over_first(m) for m in linears[key]])
    every_sigma = {k: [v for seed in traces[k] for layer in seed for v in layer] for k in SN_NETS}
    plain_final_max = [max(layer[-1] for layer in seed) for seed in traces["plain"]]

    fig1, axes = figure(ncols=3, width=4.0, height=3.5)
    for ax, key in zip(axes, SN_NETS, strict=True):
        for r in range(seeds):
            for i, values in enumerate(traces[key][r]):
                ax.plot(
                    record_steps,
                    values,
                    color=PALETTE[i],
                    alpha=1.0 if r == 0 else 0.35,
                    lw=1,
                    label=f"layer {i + 1}" if r == 0 else None,
                )
        ax.axhspan(*SN_BAND, color="0.8", alpha=0.5, lw=0, label=f"band {list(SN_BAND)}")
        ax.set(xlabel="update", title=SN_LABELS[key])
        if key != "plain":
            ax.set(ylim=(0.85, 1.35))
    axes[0].set(ylabel="largest singular value σ (exact)")
    axes[0].legend(loc="upper right")
    fig2, (ax,) = figure(width=6.4, height=3.4)
    every_norm = [v for key in SN_NETS for v in jac_all[key]]
    top = max(every_norm + [p for v in products.values() for p in v])
    low, high = math.log10(min(every_norm)), math.log10(top)
    bins = torch.logspace(low - 0.02, high + 0.02, 80).tolist()
    for i, key in enumerate(SN_NETS):
        ax.hist(jac_all[key], bins=bins, color=PALETTE[i], alpha=0.55, label=f"{key}: ‖J(x)‖₂")
        ax.axvline(max(products[key]), color=PALETTE[i], ls="--", label=f"{key}: ∏ σ (bound)")
    ax.set(
        xscale="log",
        xlabel="spectral norm of the Jacobian at a test digit (log scale)",
        ylabel="test digits × seeds",
        title="Local Lipschitz constants, and the bound the σ's give",
    )
    ax.legend(ncols=2)
    return Evidence(
        numbers={
            "seeds": seeds,
            "epochs": epochs,
            "lr": lr,
            "steps": record_steps[-1],
            "record_every": every,
            "band": list(SN_BAND),
            "sigma_min": {k: min(v) for k, v in every_sigma.items()},
            "sigma_max": {k: max(v) for k, v in every_sigma.items()},
            "sigma_final": {k: [[layer[-1] for layer in s] for s in v] for k, v in traces.items()},
            "plain_sigma_initial": [[layer[0] for layer in s] for s in traces["plain"]],
            "plain_sigma_max_final": min(plain_final_max),
            "plain_sigma_product_initial": _mean(plain_initial_products),
            "sigma_product_final": {k: max(v) for k, v in products.items()},
            "second_over_first_singular_value_final": gap,
            "max_jacobian_norm": {k: max(v) for k, v in jac_max.items()},
            "max_pair_ratio": {k: max(v) for k, v in pair_max.items()},
            "random_pairs": pairs,
            "test_accuracy": acc,
        },
        figures=[
            Figure(
                fig1,
                "The exact largest singular value of each layer's weight during training "
                "(seed 0 solid, other seeds faint; the grey band is the criterion's), with "
                "spectral normalization at 1 and 5 power-iteration steps per update, and "
                "without it.",
            ),
            Figure(
                fig2,
                "The spectral norm of each network's Jacobian at every test digit (all seeds), "
                "a lower bound on its Lipschitz constant, and the upper bound the product of "
                "its layers' σ gives (dashed, largest over seeds).",
            ),
        ],
    )


def _second_over_first(layer: nn.Module) -> float:
    """σ₂/σ₁ of the weight the layer uses (eval mode: no power step): how flat the top of
    its spectrum is, which sets how fast power iteration converges."""
    chain = layer.parametrizations.weight if parametrize.is_parametrized(layer, "weight") else None
    modes = [p.training for p in chain] if chain is not None else []
    if chain is not None:
        chain.eval()
    try:
        s = torch.linalg.svdvals(layer.weight.detach().double())
    finally:
        if chain is not None:
            for p, training in zip(chain, modes, strict=True):
                p.train(training)
    return float(s[1] / s[0])


def _lipschitz(net: nn.Module, x: Tensor, pairs: int, ctx: Context, r: int) -> tuple[Tensor, float]:
    """Per-input Jacobian spectral norms and the largest ‖f(a)-f(b)‖/‖a-b‖ over random pairs,
    in eval mode (no power-iteration step)."""
    net.eval()
    x = x.to(ctx.device)
    xr = x.clone().requires_grad_(True)
    out = net(xr)
    rows = []
    for k in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, k].sum(), xr, retain_graph=True)
        rows.append(grad)
    jac = torch.stack(rows, 1)  # (N, outputs, inputs): row k is ∂f_k/∂x
    jac_norm = torch.linalg.matrix_norm(jac.double(), ord=2).cpu()
    g = ctx.generator(300 + r)
    half = pairs // 2
    i = torch.randint(len(x), (half,), generator=g).to(ctx.device)
    j = torch.randint(len(x), (half,), generator=g).to(ctx.device)
    keep = i != j
    k = torch.randint(len(x), (pairs - half,), generator=g).to(ctx.device)
    delta = torch.randn(pairs - half, x.shape[1], generator=g).to(ctx.device) * 1e-2
    a = torch.cat([x[i[keep]], x[k]])
    b = torch.cat([x[j[keep]], x[k] + delta])
    with torch.no_grad():
        num = (net(a) - net(b)).double().norm(dim=1)
        den = (a - b).double().norm(dim=1)
    distinct = den > 0  # the digits hold a few duplicated images
    return jac_norm, float((num[distinct] / den[distinct]).max())


# ------------------------------------------------------------------- weight normalization

WN_TOLERANCE = 0.005  # half a point of test accuracy


def _decide_weight_norm(n: dict) -> tuple[str, str]:
    acc = n["test_accuracy"]
    wnmo, wn, bn = acc["wn_mean_only"], acc["wn"], acc["bn"]
    d_wn = [a - b for a, b in zip(wnmo, wn, strict=True)]
    d_bn = [a - b for a, b in zip(wnmo, bn, strict=True)]
    m_wn, h_wn = _mean(d_wn), t_halfwidth(d_wn)
    m_bn, h_bn = _mean(d_bn), t_halfwidth(d_bn)
    tol = n["tolerance"]
    errors = ", ".join(f"{LABELS[k]} {100 * (1 - _mean(v)):.2f}" for k, v in acc.items())
    reason = (
        f"test error (%) over {len(d_wn)} seeds: {errors} (paper, CIFAR-10: plain 8.43, WN "
        f"8.46, BN 8.05, WN + mean-only BN 7.31); seed-paired accuracy differences: WN + "
        f"mean-only BN - WN {m_wn:+.4f} ± {h_wn:.4f}, WN + mean-only BN - BN {m_bn:+.4f} ± "
        f"{h_bn:.4f} (95% t-intervals; tolerance vs BN {tol})"
    )
    if m_wn - h_wn > 0 and m_bn >= -tol:
        return verdict(True, reason + " — better than WN alone, and not worse than BN")
    if m_wn + h_wn < 0 or m_bn + h_bn < -tol:
        why = "worse than WN alone" if m_wn + h_wn < 0 else "worse than BN beyond the tolerance"
        return verdict(False, reason + f" — {why}, beyond the seeds' spread")
    return verdict(
        False, reason + " — the differences are within the seeds' spread", inconclusive=True
    )


@claim(
    id="norm.weight_norm_mean_only",
    section=SECTION_WN,
    statement='"As for the mean, the authors of the paper proposed using a method called '
    "'mean-only batch normalization' together with weight normalization. Basically, they "
    "subtract out the mean of the minibatch but do not divide by the standard deviation. "
    'Compared to the standard deviation, the mean apparently has a "gentler" noise thanks to '
    'the law of large numbers." The weight-norm paper ranks them on CIFAR-10 (test error): '
    "WN + mean-only BN 7.31% < BN 8.05% < plain 8.43% ≈ WN 8.46%.",
    method="The lab's digits CNN (three 3x3 convolutions of 8, 16, 32 channels, a "
    "stride of 2 in the second, global average pooling, a linear layer) in four variants: "
    "plain; BN (mldl.norm.BatchNorm2d after each convolution); WN (mldl.norm.weight_norm on "
    "every convolution and the linear layer, initialised by mldl.norm.init_weight_norm_, the "
    "paper's data-dependent initialisation, on 256 training digits); WN + mean-only BN (the "
    "same, with mldl.norm.MeanOnlyBatchNorm2d after each convolution). Per seed the four "
    "start from the same drawn weights (WN rescales them) and see the same mini-batches "
    "(Adam, lr 3e-3, batches of 64, on the ~990 training digits) for 16 epochs (quick "
    "profile; where the BN variant's training loss falls below 0.05, so that trained "
    "networks are compared rather than training speeds); test accuracy (and NLL, reported) "
    "on the 449 test digits at the end, running statistics in eval mode.",
    criterion=f"Compare seed-paired test accuracy with 95% t-intervals. Supported if WN + "
    f"mean-only BN beats WN alone (interval above 0) and is at most {WN_TOLERANCE} below BN "
    f"on average. Not supported if it is worse than WN alone (interval below 0) or worse "
    f"than BN by more than {WN_TOLERANCE} (interval below -{WN_TOLERANCE}). Inconclusive "
    f"otherwise (differences within the seeds' spread). Plain is reported, not judged.",
    decide=_decide_weight_norm,
)
def weight_norm_mean_only(ctx: Context) -> Evidence:
    from ..data import digits

    split = digits(ctx.seed).images()
    seeds = ctx.pick(2, 5, 10)
    # 16 epochs: where the BN variant's training loss falls below 0.05 (seed 0), so that the
    # comparison is between trained networks, not of how fast they train.
    epochs = ctx.pick(2, 16, 40)
    widths = ctx.pick((8, 16, 32), (8, 16, 32), (16, 32, 64))
    lr = 3e-3
    acc: dict[str, list[float]] = {k: [] for k in KINDS}
    nll: dict[str, list[float]] = {k: [] for k in KINDS}
    curves: dict[str, list[list[float]]] = {k: [] for k in KINDS}
    for r in range(seeds):
        draws = _draw(ctx.generator(1000 + r), widths, 10)
        init_idx = torch.randperm(len(split.x_train), generator=ctx.generator(1100 + r))[:256]
        for kind in KINDS:
            model = _cnn(kind, draws).to(ctx.device)
            if kind.startswith("wn"):
                _data_dependent_init(model, split.x_train[init_idx].to(ctx.device))
            history = _train(
                model,
                split.x_train,
                split.y_train,
                ctx,
                epochs=epochs,
                lr=lr,
                batch_size=64,
                stream=1200 + r,
                desc=f"weight norm seed {r} ({kind}): epochs",
            )
            z = logits_of(model, split.x_test, ctx)
            acc[kind].append(accuracy(z, split.y_test))
            nll[kind].append(float(F.cross_entropy(z, split.y_test)))
            curves[kind].append(history)

    fig, (ax1, ax2, ax3) = figure(ncols=3, width=3.9, height=3.5)
    epoch_axis = list(range(1, epochs + 1))
    for i, kind in enumerate(KINDS):
        mean = torch.tensor(curves[kind], dtype=torch.float64).mean(0)
        ax1.semilogy(epoch_axis, mean, "-", color=PALETTE[i], label=LABELS[kind])
        errors = [100 * (1 - a) for a in acc[kind]]
        ax2.plot([i] * len(errors), errors, "o", color=PALETTE[i], alpha=0.45, ms=4)
        ax2.errorbar(
            [i + 0.15], [_mean(errors)], yerr=[_sd(errors)], fmt="D", color=PALETTE[i], capsize=3
        )
        ax3.bar([i], [PAPER_ERROR[kind]], color=PALETTE[i])
        ax3.annotate(
            f"{PAPER_ERROR[kind]:.2f}",
            (i, PAPER_ERROR[kind]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    names = [LABELS[k].replace(" + ", "\n+ ") for k in KINDS]
    ax1.set(xlabel="epoch", ylabel="mean training loss (mean over seeds)", title="Training")
    ax1.legend()
    ax2.set(
        xticks=list(range(len(KINDS))),
        xticklabels=names,
        ylabel="test error (%)",
        title="Digits (dots: seeds; ◆: mean ± sd)",
    )
    ax3.set(
        xticks=list(range(len(KINDS))),
        xticklabels=names,
        ylabel="test error (%)",
        ylim=(6.5, 9.0),
        title="The paper, CIFAR-10",
    )
    return Evidence(
        numbers={
            "seeds": seeds,
            "epochs": epochs,
            "widths": list(widths),
            "lr": lr,
            "tolerance": WN_TOLERANCE,
            "train_examples": len(split.x_train),
            "test_examples": len(split.x_test),
            "test_accuracy": acc,
            "test_nll": nll,
            "final_train_loss": {k: [c[-1] for c in v] for k, v in curves.items()},
            "paper_cifar10_test_error": PAPER_ERROR,
        },
        figures=[
            Figure(
                fig,
                "Left: mean training loss per epoch of the four variants of the digits CNN. "
                "Middle: their test error per seed. Right: the weight-norm paper's CIFAR-10 "
                "test errors for the same four, for comparison of the ordering.",
            )
        ],
    )


# ------------------------------------------------------- batch norm: fine-tuning statistics

MODES = ("minibatch", "frozen_original", "recomputed_new")
# The head's learning rate: at 1e-3 a head on frozen features was still far from converged
# after a few epochs (training loss ~1.4 vs ~0.8 at 1e-2), whatever the statistics.
FT_LR = 1e-2
MISMATCH_BATCHES = (2, 4, 8, 16, 64)
MODE_LABELS = {
    "minibatch": "(a) mini-batch statistics\n(BN in train mode)",
    "frozen_original": "(b) original dataset's\nstatistics, frozen",
    "recomputed_new": "(c) new data's statistics,\nrecomputed, frozen",
}


@torch.no_grad()
def _feature_mismatch(
    body: nn.Module, x: Tensor, sizes: tuple[int, ...], g: torch.Generator, ctx: Context
) -> list[float]:
    """Mean over ``x`` of ‖f_B(x) - f_eval(x)‖ / ‖f_eval(x)‖ for each batch size B: f_B is
    the body in training mode on a random batch of B examples holding x (normalised with
    that batch's statistics), f_eval the body in eval mode (its running statistics). A
    copy of the body runs the training-mode passes, so its running statistics stay put."""
    x = x.to(ctx.device)
    reference = body.eval()(x)
    out = []
    for size in sizes:
        probe = copy.deepcopy(body).train()
        order = torch.randperm(len(x), generator=g).to(ctx.device)
        gaps = []
        for start in range(0, len(x) - size + 1, size):  # full batches only
            idx = order[start : start + size]
            f = probe(x[idx])
            ref = reference[idx]
            gaps.append((f - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-12))
        out.append(float(torch.cat(gaps).mean()))
    return out


def _decide_finetune(n: dict) -> tuple[str, str]:
    acc = n["test_accuracy"]
    diffs = [b - a for a, b in zip(acc["minibatch"], acc["frozen_original"], strict=True)]
    mean, half = _mean(diffs), t_halfwidth(diffs)
    reason = (
        f"fine-tuning the last layer with batches of {n['finetune_batch']} over "
        f"{len(diffs)} seeds, test accuracy on the new classes: (a) mini-batch statistics "
        f"{_mean(acc['minibatch']):.4f}, (b) original dataset's statistics frozen "
        f"{_mean(acc['frozen_original']):.4f}, (c) new data's statistics recomputed and "
        f"frozen {_mean(acc['recomputed_new']):.4f}; (b) - (a) {mean:+.4f} ± {half:.4f} "
        f"(95% t-interval, seed-paired)"
    )
    if mean - half > 0:
        return verdict(True, reason + " — the interval lies above 0")
    if mean + half < 0:
        return verdict(False, reason + " — the interval lies below 0")
    return verdict(False, reason + " — the interval contains 0", inconclusive=True)


@claim(
    id="norm.finetune_frozen_bn",
    section=SECTION_BN,
    statement='"Suppose we fine-tune a ResNet50 by freezing all the layers except the last '
    "layer. An interesting question is whether we should use the mean and variance computed "
    "on the original dataset or use the mean and variance of the mini-batches. Though most "
    "frameworks use the mini-batch statistics, if we are using a different mini-batch size "
    "there will be a mismatch between the optimal batch normalization parameters and the "
    "parameters in the network. [...] it might be better to use the statistics of the "
    'original dataset instead."',
    method="Pretrain the BN variant of the lab's digits CNN (mldl.norm.BatchNorm2d, momentum "
    "0.1) on the training digits of classes 0-4 (Adam, lr 3e-3, batches of 64). Then freeze "
    "every layer but the last (convolutions and BN's γ, β), put a fresh linear head for "
    "classes 5-9 on it, and fine-tune only the head on the training digits of classes 5-9 "
    "with small batches (4; Adam, lr 1e-2), three ways: (a) BN layers in their default "
    "training mode (each mini-batch's own statistics, running averages updated, then used in "
    "eval); (b) mldl.norm.freeze_statistics: the running statistics from pretraining (the "
    "original dataset's), never updated; (c) mldl.norm.recompute_statistics on the new "
    "training digits, then frozen. Per seed the three share the pretrained network, the "
    "head's initial weights and the mini-batch order. Evaluate accuracy on the test digits "
    "of classes 5-9 in eval mode.",
    criterion="Supported if the 95% t-interval of the seed-paired accuracy difference (b) "
    "- (a) lies above 0 (the original statistics beat the mini-batch statistics beyond the "
    "seeds' spread); not supported if it lies below 0; inconclusive otherwise. (c) is "
    "reported, not judged.",
    decide=_decide_finetune,
)
def finetune_frozen_bn(ctx: Context) -> Evidence:
    from ..data import digits

    split = digits(ctx.seed).images()
    seeds = ctx.pick(2, 5, 10)
    pre_epochs = ctx.pick(2, 12, 30)
    ft_epochs = ctx.pick(1, 4, 15)
    widths = ctx.pick((8, 16, 32), (8, 16, 32), (16, 32, 64))
    ft_batch = 4
    old_tr, new_tr = split.y_train < 5, split.y_train >= 5
    new_te = split.y_test >= 5
    x_old, y_old = split.x_train[old_tr], split.y_train[old_tr]
    x_new, y_new = split.x_train[new_tr], split.y_train[new_tr] - 5
    x_test, y_test = split.x_test[new_te], split.y_test[new_te] - 5
    acc: dict[str, list[float]] = {m: [] for m in MODES}
    pre_acc: list[float] = []
    shift: dict[str, list[float]] = {m: [] for m in MODES}
    example: dict[str, list[float]] = {}
    mismatch: dict[str, list[float]] = {str(b): [] for b in MISMATCH_BATCHES}
    for r in range(seeds):
        draws = _draw(ctx.generator(2000 + r), widths, 5)
        model = _cnn("bn", draws).to(ctx.device)
        _train(
            model,
            x_old,
            y_old,
            ctx,
            epochs=pre_epochs,
            lr=3e-3,
            batch_size=64,
            stream=2100 + r,
            desc=f"fine-tuning seed {r}: pretraining epochs",
        )
        old_te = split.y_test < 5
        pre_acc.append(accuracy(logits_of(model, split.x_test[old_te], ctx), split.y_test[old_te]))
        backbone = model[:-1]
        for p in backbone.parameters():
            p.requires_grad_(False)
        head_init = nn.Linear(widths[-1], 5).to(ctx.device)
        g_head = ctx.generator(2200 + r)
        bound = 1 / math.sqrt(widths[-1])
        with torch.no_grad():
            head_init.weight.copy_((torch.rand(5, widths[-1], generator=g_head) * 2 - 1) * bound)
            head_init.bias.copy_((torch.rand(5, generator=g_head) * 2 - 1) * bound)
        exact = copy.deepcopy(backbone)
        recompute_statistics(exact, [x_new.to(ctx.device)])
        last_bn = [m for m in exact if isinstance(m, BatchNorm2d)][-1]
        target_mean = last_bn.running_mean.clone()
        for mode in MODES:
            body, head = copy.deepcopy(backbone), copy.deepcopy(head_init)
            if mode == "minibatch":
                net = nn.Sequential(body, head)
                _train(
                    net,
                    x_new,
                    y_new,
                    ctx,
                    epochs=ft_epochs,
                    lr=FT_LR,
                    batch_size=ft_batch,
                    stream=2300 + r,
                    desc=f"fine-tuning seed {r} ({mode}): epochs",
                )
                z = logits_of(net, x_test, ctx)
                sizes = MISMATCH_BATCHES
                gaps = _feature_mismatch(body, x_new[:128], sizes, ctx.generator(2400 + r), ctx)
                for size, gap in zip(sizes, gaps, strict=True):
                    mismatch[str(size)].append(gap)
            else:
                if mode == "recomputed_new":
                    recompute_statistics(body, [x_new.to(ctx.device)])
                freeze_statistics(body)
                # The frozen body is a fixed function: train the head on its features, with
                # the same batches as (a).
                with torch.no_grad():
                    body.eval()
                    f_train = body(x_new.to(ctx.device))
                    f_test = body(x_test.to(ctx.device))
                _train(
                    head,
                    f_train,
                    y_new,
                    ctx,
                    epochs=ft_epochs,
                    lr=FT_LR,
                    batch_size=ft_batch,
                    stream=2300 + r,
                    desc=f"fine-tuning seed {r} ({mode}): epochs",
                )
                z = logits_of(head, f_test, ctx)
            acc[mode].append(accuracy(z, y_test))
            bn_last = [m for m in body if isinstance(m, BatchNorm2d)][-1]
            used = bn_last.running_mean
            shift[mode].append(float((used - target_mean).norm() / target_mean.norm()))
            if r == 0:
                example[mode] = used.cpu().tolist()
        if r == 0:
            example["new data (exact)"] = target_mean.cpu().tolist()

    fig, (ax1, ax3, ax2) = figure(ncols=3, width=4.3, height=3.7)
    for r in range(seeds):
        ax1.plot(range(len(MODES)), [acc[m][r] for m in MODES], "o-", color="0.6", lw=1, ms=4)
    for i, m in enumerate(MODES):
        ax1.plot([i], [_mean(acc[m])], "D", ms=9, color=PALETTE[i], label=f"mean {m}")
    ax1.set(
        xticks=list(range(len(MODES))),
        xticklabels=[MODE_LABELS[m] for m in MODES],
        xlim=(-0.4, len(MODES) - 0.6),
        ylabel="test accuracy, classes 5-9",
        title=f"Fine-tuning the last layer, batches of {ft_batch}",
    )
    ax1.tick_params(axis="x", labelsize=7)
    channels = list(range(len(example["new data (exact)"])))
    ax2.plot(channels, example["new data (exact)"], "k_", ms=14, mew=2, label="new data (exact)")
    markers = {"minibatch": "o", "frozen_original": "s", "recomputed_new": "x"}
    for i, m in enumerate(MODES):
        ax2.plot(
            channels,
            example[m],
            markers[m],
            color=PALETTE[i],
            ms=5,
            fillstyle="none",
            label=m + (" (after fine-tuning)" if m == "minibatch" else ""),
        )
    ax2.set(
        xlabel="channel of the last BN layer",
        ylabel="running mean used in eval",
        title="Statistics the head is evaluated with (seed 0)",
    )
    ax2.legend(fontsize=7)
    for r in range(seeds):
        ax3.plot(
            MISMATCH_BATCHES,
            [mismatch[str(b)][r] for b in MISMATCH_BATCHES],
            "o-",
            color="0.6",
            lw=1,
            ms=3,
        )
    ax3.plot(
        MISMATCH_BATCHES,
        [_mean(mismatch[str(b)]) for b in MISMATCH_BATCHES],
        "D-",
        color=PALETTE[0],
        label="mean over seeds",
    )
    ax3.axvline(ft_batch, color=PALETTE[1], ls=":", label=f"fine-tuning batch ({ft_batch})")
    ax3.axvline(64, color=PALETTE[2], ls=":", label="pretraining batch (64)")
    ax3.set(
        xscale="log",
        xticks=list(MISMATCH_BATCHES),
        xticklabels=[str(b) for b in MISMATCH_BATCHES],
        xlabel="batch size whose statistics normalise",
        ylabel="‖f_batch(x) - f_eval(x)‖ / ‖f_eval(x)‖",
        title="(a): features in training vs in eval",
    )
    ax3.minorticks_off()
    ax3.legend(fontsize=7)
    return Evidence(
        numbers={
            "seeds": seeds,
            "pretrain_epochs": pre_epochs,
            "finetune_epochs": ft_epochs,
            "finetune_batch": ft_batch,
            "finetune_lr": FT_LR,
            "pretrain_batch": 64,
            "widths": list(widths),
            "pretrain_test_accuracy_classes_0_4": pre_acc,
            "new_train_examples": len(x_new),
            "new_test_examples": len(x_test),
            "test_accuracy": acc,
            "last_bn_running_mean_relative_distance_to_new_data": shift,
            "feature_mismatch_by_batch_size": mismatch,
        },
        figures=[
            Figure(
                fig,
                "Left: test accuracy on the new classes after fine-tuning only the last "
                "layer, per seed (grey lines join a seed's three runs) and mean. Middle: the "
                "mismatch the notes describe: how far the features (a)'s head sees in "
                "training, normalised with the statistics of a batch of the given size, are "
                "from those it is evaluated on (running statistics), per seed and mean, on "
                "128 new training digits. Right: the running mean of the last BN layer each "
                "way evaluates with, against the new data's exact mean (seed 0): (a)'s, an "
                "average of the last few mini-batches, is close to it.",
            )
        ],
    )
