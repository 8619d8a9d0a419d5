"""Run claims: each in turn, seeded, timed, an error caught and reported as such."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from .core import REGISTRY, VERDICTS, Claim, Context, Figure


@dataclass
class Result:
    """One claim's outcome. ``verdict`` is one of the verdicts, or ``'error'`` when the
    experiment or its decision raised (``error`` then holds the traceback)."""

    claim: Claim
    verdict: str
    reason: str
    numbers: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    table: list[dict[str, Any]] | None = None
    seconds: float = 0.0
    error: str | None = None


def load_claims() -> dict[str, Claim]:
    """Every registered claim (importing the claim modules registers them), in the notes'
    order (``claims.ORDER``, by id prefix; stable within a section)."""
    from . import claims

    rank = {prefix: k for k, prefix in enumerate(claims.ORDER)}
    ordered = sorted(REGISTRY.values(), key=lambda c: rank.get(c.id.split(".")[0], len(rank)))
    return {c.id: c for c in ordered}


def select(ids: list[str] | None = None) -> list[Claim]:
    """The claims to run: all, or those whose id is in ``ids`` or starts with one of them
    followed by a dot (``--only smoothing`` runs every ``smoothing.*`` claim)."""
    registry = load_claims()
    if not ids:
        return list(registry.values())
    chosen = [
        c for c in registry.values() if any(c.id == i or c.id.startswith(i + ".") for i in ids)
    ]
    unknown = [i for i in ids if not any(c.id == i or c.id.startswith(i + ".") for c in chosen)]
    if unknown:
        raise ValueError(f"lab: --only: no claim matches {unknown}; known ids: {sorted(registry)}")
    return chosen


def run_claim(claim: Claim, context: Context) -> Result:
    """Run one claim's experiment and decide its verdict from the numbers it returns."""
    torch.manual_seed(context.seed)  # for code that draws without an explicit generator
    threads = torch.get_num_threads()
    torch.set_num_threads(context.threads)
    start = time.perf_counter()
    try:
        evidence = claim.experiment(context)
        verdict, reason = claim.decide(evidence.numbers)
        if verdict not in VERDICTS:
            raise ValueError(f"decide returned {verdict!r}, not one of {VERDICTS}")
    except Exception as exc:  # reported, and the other claims still run
        return Result(
            claim,
            "error",
            f"{type(exc).__name__}: {exc}",
            {},
            seconds=time.perf_counter() - start,
            error=traceback.format_exc(),
        )
    finally:
        torch.set_num_threads(threads)
    result = Result(
        claim,
        verdict,
        reason,
        evidence.numbers,
        evidence.figures,
        evidence.table,
        seconds=time.perf_counter() - start,
    )
    _close_figures(result)
    return result


def run(claims: list[Claim], context: Context) -> list[Result]:
    """Run the claims in order with a progress bar over them (when the context shows one)."""
    return [
        run_claim(claim, context) for claim in context.steps(claims, "claims", total=len(claims))
    ]


def _close_figures(result: Result) -> None:
    """Render each figure to PNG bytes now and free matplotlib's memory of it."""
    import matplotlib.pyplot as plt

    from .report import png_bytes

    rendered = []
    for fig in result.figures:
        rendered.append(Figure(png_bytes(fig.figure), fig.caption))
        plt.close(fig.figure)
    result.figures = rendered
