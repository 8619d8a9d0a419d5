"""The claim registry: what a claim is, what its experiment returns, how a verdict is made.

A claim is one sentence of the notes turned into an experiment. Everything that decides its
verdict is fixed in code before it runs: the statement (quoted from the notes), the method,
the pass criterion in words, and ``decide``, the function that turns the measured numbers
into a verdict. The experiment only measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

VERDICTS = ("supported", "not supported", "inconclusive")
PROFILES = ("tiny", "quick", "full")


@dataclass(frozen=True)
class Figure:
    """A matplotlib figure and the sentence that says what it shows."""

    figure: Any
    caption: str


@dataclass
class Evidence:
    """What an experiment measured: JSON-friendly numbers (the verdict is computed from these
    alone), figures, and optionally a table (a list of rows, each a dict column -> value)."""

    numbers: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    table: list[dict[str, Any]] | None = None


@dataclass
class Context:
    """What an experiment may use: the profile (``tiny`` for tests, ``quick`` by default,
    ``full`` for settings closer to the papers'), the device, the seed, and a progress bar
    for its inner loops."""

    profile: str = "quick"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: bool = False
    # The lab's models are small: one intra-op thread runs them fastest (up to 10x faster
    # than two on a busy 2-core machine, where the threads wait for each other) and makes the
    # numbers independent of the core count.
    threads: int = 1

    def pick(self, tiny: Any, quick: Any, full: Any) -> Any:
        """The setting for this profile."""
        return {"tiny": tiny, "quick": quick, "full": full}[self.profile]

    def generator(self, stream: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed and a per-use stream number, so that two
        draws in one experiment are independent and every run repeats them exactly."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + stream)

    def steps(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterator:
        """Iterate with a progress bar (tqdm) when the run shows progress."""
        if not self.progress:
            yield from iterable
            return
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=f"  {desc}", total=total, leave=False, dynamic_ncols=True)


Decide = Callable[[dict[str, Any]], tuple[str, str]]
Experiment = Callable[[Context], Evidence]


@dataclass(frozen=True)
class Claim:
    """One claim of the notes and the experiment that tests it.

    ``decide(numbers) -> (verdict, reason)``: the verdict is one of :data:`VERDICTS`, the
    reason a sentence quoting the numbers it used.
    """

    id: str
    section: str
    statement: str
    method: str
    criterion: str
    experiment: Experiment
    decide: Decide

    def __post_init__(self) -> None:
        for name in ("id", "section", "statement", "method", "criterion"):
            if not getattr(self, name).strip():
                raise ValueError(f"Claim {self.id!r}: {name} must not be empty")


REGISTRY: dict[str, Claim] = {}


def claim(
    *, id: str, section: str, statement: str, method: str, criterion: str, decide: Decide
) -> Callable[[Experiment], Experiment]:
    """Register the decorated experiment as a claim (ids are unique)."""

    def register(experiment: Experiment) -> Experiment:
        if id in REGISTRY:
            raise ValueError(f"claim id {id!r} is registered twice")
        REGISTRY[id] = Claim(id, section, statement, method, criterion, experiment, decide)
        return experiment

    return register


def verdict(ok: bool, reason: str, *, inconclusive: bool = False) -> tuple[str, str]:
    """A decide-helper: 'inconclusive' when asked, else 'supported' if ``ok``."""
    if inconclusive:
        return "inconclusive", reason
    return ("supported" if ok else "not supported"), reason
