"""The lab: every claim of the notes as a measured, seeded experiment with a report.

``mldl lab`` (or ``make lab``) runs them; :func:`run` does the same from Python. A claim
module registers its claims with :func:`mldl.lab.core.claim`; see ``docs/lab.md``.
"""

from .core import REGISTRY, VERDICTS, Claim, Context, Evidence, Figure, claim, verdict
from .runner import Result, load_claims, run_claim, select

__all__ = [
    "REGISTRY",
    "VERDICTS",
    "Claim",
    "Context",
    "Evidence",
    "Figure",
    "Result",
    "claim",
    "load_claims",
    "run_claim",
    "select",
    "verdict",
]
