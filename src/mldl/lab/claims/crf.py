"""The notes' "Networks" section: a conditional random field is a log-linear Markov random
field (a Boltzmann machine without latent variables) over the labels, conditioned on the
input. What the chain's pairwise potentials buy over labelling each token on its own.

The data come from a hidden Markov model whose hidden state is the label: sticky states
(a state mostly repeats, else mostly moves on to the next one) and Gaussian observations
whose class means are close relative to the noise. With a shared isotropic covariance the
HMM's posterior over label sequences is itself a linear-chain CRF whose emissions are linear
in the observation (log N(x; μ_s, σ²I) = x·μ_s/σ² - ‖μ_s‖²/2σ² + const) and whose
transitions are log P(s' | s): a linear layer feeding :class:`mldl.pgm.LinearChainCRF` is
the right model, and the independent classifier is the same linear layer without the chain.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...pgm import LinearChainCRF
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import t_halfwidth

SECTION = "Networks: Markov random fields and conditional random fields"
STATES = 5  # hidden states = labels
FEATURES = 8  # observation dimension
NOISE = 2.0  # observation noise σ; the class means are N(0, I)
STAY, NEXT = 0.8, 0.12  # P(s -> s), P(s -> s + 1 mod S); the rest spread over the others
MIN_CORRELATION = 0.8  # the learned transitions must resemble the generating ones this much


@dataclass(frozen=True)
class Recipe:
    """Sizes: ``train`` and ``test`` sequences of length ``length`` per seed, L-BFGS for at
    most ``iterations`` iterations on the full training set."""

    seeds: int
    train: int
    test: int
    length: int
    iterations: int


def _recipe(ctx: Context) -> Recipe:
    return ctx.pick(
        Recipe(seeds=3, train=40, test=60, length=20, iterations=25),
        Recipe(seeds=8, train=200, test=400, length=30, iterations=60),
        Recipe(seeds=20, train=400, test=1000, length=40, iterations=100),
    )


def true_transitions() -> Tensor:
    """The generating transition matrix P(s' | s): sticky, with a preferred next state."""
    rest = (1 - STAY - NEXT) / (STATES - 2)
    p = torch.full((STATES, STATES), rest, dtype=torch.float64)
    for s in range(STATES):
        p[s, s] = STAY
        p[s, (s + 1) % STATES] = NEXT
    return p


def _sample(n: int, length: int, means: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences from the HMM: observations (n, length, D) and states (n, length); the
    first state uniform (the chain's stationary distribution is uniform: it is doubly
    stochastic)."""
    p = true_transitions()
    states = torch.empty(n, length, dtype=torch.long)
    states[:, 0] = torch.randint(STATES, (n,), generator=g)
    for t in range(1, length):
        states[:, t] = torch.multinomial(p[states[:, t - 1]], 1, generator=g).squeeze(1)
    x = means[states] + NOISE * torch.randn(n, length, FEATURES, generator=g, dtype=torch.float64)
    return x, states


def double_centred(m: Tensor) -> Tensor:
    """``m`` less its row and column means (plus the grand mean): the part of a transition
    score matrix a linear-chain CRF can identify. Adding c_i to row i and subtracting it from
    column i changes every path's score by c_{y_1} - c_{y_T} (absorbed by the start and end
    scores); adding b_j to column j is an emission bias (absorbed by the linear layer)."""
    return m - m.mean(0, keepdim=True) - m.mean(1, keepdim=True) + m.mean()


def _correlation(a: Tensor, b: Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _fit(params: list[Tensor], loss_fn, iterations: int) -> float:
    optimizer = torch.optim.LBFGS(
        params, max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9
    )

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(loss_fn())


def _one_seed(ctx: Context, recipe: Recipe, seed: int) -> dict:
    g = ctx.generator(100 + seed)
    means = torch.randn(STATES, FEATURES, generator=g, dtype=torch.float64)
    x_train, y_train = _sample(recipe.train, recipe.length, means, g)
    x_test, y_test = _sample(recipe.test, recipe.length, means, g)
    # both models start from the same linear layer (nn.Linear's U(±1/√D) initialisation)
    independent = nn.Linear(FEATURES, STATES).double()
    bound = 1 / math.sqrt(FEATURES)
    with torch.no_grad():
        for p in independent.parameters():
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
    layer = copy.deepcopy(independent)

    # the independent classifier: the linear layer, cross-entropy per token
    ce = nn.CrossEntropyLoss()

    def independent_loss():
        return ce(independent(x_train).reshape(-1, STATES), y_train.reshape(-1))

    independent_nll = _fit(list(independent.parameters()), independent_loss, recipe.iterations)

    # the CRF: the same linear layer feeding a linear-chain CRF (transitions from 0)
    crf = LinearChainCRF(STATES).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.zero_()

    def crf_loss():
        return crf(layer(x_train), y_train, reduction="token_mean")

    params = list(layer.parameters()) + list(crf.parameters())
    crf_nll = _fit(params, crf_loss, recipe.iterations)

    with torch.no_grad():
        acc_independent = float((independent(x_test).argmax(2) == y_test).double().mean())
        paths, _ = crf.decode(layer(x_test))
        acc_crf = float((paths == y_test).double().mean())
        # the ceiling: Viterbi with the generating HMM, written as a CRF
        oracle = LinearChainCRF(STATES).double()
        oracle.transitions.copy_(true_transitions().log())
        oracle.start_transitions.fill_(-math.log(STATES))
        oracle.end_transitions.zero_()
        log_emission = -((x_test.unsqueeze(2) - means) ** 2).sum(3) / (2 * NOISE**2)
        oracle_paths, _ = oracle.decode(log_emission)
        acc_oracle = float((oracle_paths == y_test).double().mean())
        learned = crf.transitions.detach().clone()
    truth = true_transitions().log()
    return {
        "independent": acc_independent,
        "crf": acc_crf,
        "oracle": acc_oracle,
        "independent_train_nll": independent_nll,
        "crf_train_nll": crf_nll,
        "correlation": _correlation(double_centred(learned), double_centred(truth)),
        "raw_correlation": _correlation(learned, truth),
        "learned": learned,
    }


def _decide(n: dict) -> tuple[str, str]:
    gain = [c - i for c, i in zip(n["crf_accuracy"], n["independent_accuracy"], strict=True)]
    mean = sum(gain) / len(gain)
    half = t_halfwidth(gain)
    corr = n["transition_correlation"]
    mean_corr = sum(corr) / len(corr)
    acc = {k: sum(v) / len(v) for k, v in n.items() if k.endswith("_accuracy")}
    reason = (
        f"over {n['seeds']} seeds, test token accuracy {acc['independent_accuracy']:.3f} for "
        f"the independent classifier, {acc['crf_accuracy']:.3f} for the CRF (the generating "
        f"HMM's Viterbi: {acc['oracle_accuracy']:.3f}); CRF - independent {mean:+.3f} ± "
        f"{half:.3f} (95% t-interval of the seed-paired differences); correlation of the "
        f"learned transitions with log P(s'|s), both double-centred: mean {mean_corr:.2f} "
        f"(min {min(corr):.2f}; want ≥ {MIN_CORRELATION})"
    )
    if mean - half > 0 and mean_corr >= MIN_CORRELATION:
        return verdict(True, reason)
    if mean + half <= 0:
        return verdict(False, reason + " — the CRF is not more accurate")
    if mean - half > 0 and mean_corr < 0.5:
        return verdict(False, reason + " — the learned transitions do not resemble the true ones")
    return verdict(False, reason + " — not beyond the seeds' spread", inconclusive=True)


@claim(
    id="crf.beats_independent",
    section=SECTION,
    statement="Networks: Markov Random Field / Log-linear model: Boltzmann machine without "
    "latent variables: e.g. Conditional Random Field.",
    method=f"Per seed, draw sequences from a hidden Markov model with {STATES} sticky states "
    f"(P(stay) = {STAY}, P(next state) = {NEXT}, the rest spread evenly) and Gaussian "
    f"observations in {FEATURES} dimensions (class means N(0, I), noise σ = {NOISE}). Train a "
    "linear layer on the observation with per-token cross-entropy (the independent "
    "classifier), and the same linear layer feeding a LinearChainCRF with its NLL (the "
    "log-linear model over the whole label sequence), both by full-batch L-BFGS from the "
    "same initial weights. Compare test token accuracy (argmax per token vs Viterbi), and "
    "the learned transition scores with the log of the generating transition probabilities "
    "(both double-centred: row and column constants are not identifiable in a CRF).",
    criterion="Supported if the 95% t-interval of the seed-paired accuracy difference (CRF - "
    f"independent) lies above 0 and the mean correlation of the transitions is ≥ "
    f"{MIN_CORRELATION}; not supported if the interval lies at or below 0, or the CRF wins "
    "with a correlation below 0.5; inconclusive otherwise.",
    decide=_decide,
)
def beats_independent(ctx: Context) -> Evidence:
    recipe = _recipe(ctx)
    runs = [_one_seed(ctx, recipe, s) for s in ctx.steps(range(recipe.seeds), "seeds")]
    truth = true_transitions().log()

    fig, (ax_acc, ax_true, ax_learned) = figure(ncols=3, width=3.9)
    for r in runs:
        ax_acc.plot([0, 1, 2], [r["independent"], r["crf"], r["oracle"]], "-", color="0.75")
        for x, key, colour in ((0, "independent", 1), (1, "crf", 0), (2, "oracle", 2)):
            ax_acc.plot(x, r[key], "o", color=PALETTE[colour])
    ax_acc.set(
        xticks=[0, 1, 2],
        xticklabels=["independent", "CRF", "true HMM"],
        ylabel="test token accuracy",
        title="Accuracy per seed",
    )
    shown = [double_centred(truth), double_centred(runs[0]["learned"])]
    limit = float(max(m.abs().max() for m in shown))
    titles = ["log P(s'|s), generating HMM", "learned transitions, seed 0"]
    for ax, m, title in zip((ax_true, ax_learned), shown, titles, strict=True):
        image = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set(title=title + " (centred)", xlabel="to state", ylabel="from state")
        ax.set_xticks(range(STATES))
        ax.set_yticks(range(STATES))
        ax.grid(False)
    fig.colorbar(image, ax=[ax_true, ax_learned], shrink=0.8)

    return Evidence(
        numbers={
            "seeds": recipe.seeds,
            "train_sequences": recipe.train,
            "test_sequences": recipe.test,
            "length": recipe.length,
            "states": STATES,
            "features": FEATURES,
            "noise": NOISE,
            "stay": STAY,
            "next": NEXT,
            "independent_accuracy": [r["independent"] for r in runs],
            "crf_accuracy": [r["crf"] for r in runs],
            "oracle_accuracy": [r["oracle"] for r in runs],
            "independent_train_nll_per_token": [r["independent_train_nll"] for r in runs],
            "crf_train_nll_per_token": [r["crf_train_nll"] for r in runs],
            "transition_correlation": [r["correlation"] for r in runs],
            "raw_transition_correlation": [r["raw_correlation"] for r in runs],
            "learned_transitions_seed0": runs[0]["learned"].tolist(),
            "true_log_transitions": truth.tolist(),
        },
        figures=[
            Figure(
                fig,
                "Left: test token accuracy per seed (lines join a seed's models); the CRF "
                "uses the same linear layer as the independent classifier, plus transitions. "
                "Middle and right: the generating log transition probabilities and the "
                "CRF's learned transition scores, both less their row and column means.",
            )
        ],
    )
