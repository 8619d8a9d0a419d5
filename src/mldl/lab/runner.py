"""Run claims: each seeded, timed, an error caught and reported as such; in turn, or spread
over worker processes (``jobs``), with the same numbers either way."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import torch

from .core import REGISTRY, VERDICTS, Claim, Context, Figure


@dataclass
class Result:
    """One claim's outcome. ``verdict`` is one of the verdicts, or ``'error'`` when the
    experiment or its decision raised (``error`` then holds the traceback)."""

    claim: Claim | None  # None only while crossing from a worker process
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


def run(claims: list[Claim], context: Context, jobs: int = 1) -> list[Result]:
    """Run the claims with a progress bar over them (when the context shows one) and return
    their results in the claims' order: in this process when ``jobs`` is 1, else in
    ``jobs`` worker processes (each claim still on one thread, seeded as here, so the numbers
    are the same; the workers show no inner progress bars)."""
    if jobs <= 1 or len(claims) <= 1:
        return [run_claim(c, context) for c in context.steps(claims, "claims", total=len(claims))]
    quiet = dataclasses.replace(context, progress=False)
    done: dict[str, Result] = {}
    # spawn, not fork: a forked child of a process that has run OpenMP threads can hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(claims)), mp_context=spawn) as pool:
        futures = {pool.submit(_run_in_worker, c.id, quiet): c for c in claims}
        for future in context.steps(as_completed(futures), "claims", total=len(claims)):
            claim = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the worker itself died (killed, out of memory)
                result = Result(
                    None, "error", f"worker failed: {exc!r}", {}, error=traceback.format_exc()
                )
            result.claim = claim
            done[claim.id] = result
    return [done[c.id] for c in claims]


def _run_in_worker(claim_id: str, context: Context) -> Result:
    """One claim in a worker process; the result travels back without the claim (its
    functions stay where they are registered)."""
    result = run_claim(load_claims()[claim_id], context)
    result.claim = None
    return result


def _close_figures(result: Result) -> None:
    """Render each figure to PNG bytes now and free matplotlib's memory of it."""
    import matplotlib.pyplot as plt

    from .report import png_bytes

    rendered = []
    for fig in result.figures:
        rendered.append(Figure(png_bytes(fig.figure), fig.caption))
        plt.close(fig.figure)
    result.figures = rendered
