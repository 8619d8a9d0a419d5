"""Benchmarks: ``python -m benchmarks [module ...]`` (``make bench`` runs them all).

A benchmark is a module ``benchmarks/NAME.py`` with a function ``run() -> str`` that
measures with :mod:`benchmarks._harness` and returns the Markdown of its section of
RESULTS.md; list ``NAME`` in :data:`MODULES`. Run from the repository root.
"""

MODULES = ("losses", "cross_entropy", "norms", "crf", "bayesnet", "boltzmann")
