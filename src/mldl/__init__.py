"""mldl: the notes "Machine Learning and Deep Learning" made executable.

* :mod:`mldl.losses`: every loss the notes name, PyTorch's conventions, checked inputs.
* :mod:`mldl.norm`: the normalization family, synchronised statistics over processes.
* :mod:`mldl.pgm`: Bayesian networks, Markov random fields, RBM / DBN / DBM, linear-chain CRF.
* :mod:`mldl.calibration`: calibration error, reliability diagrams, temperature scaling.
* :mod:`mldl.lab`: the notes' claims as seeded experiments (``mldl lab``).
* ``mldl.checks(True)`` (or ``MLDL_CHECKS=1``): value checks on every input.
"""

from . import calibration, losses
from ._checks import checks, checks_enabled

__version__ = "0.1.0"

__all__ = ["__version__", "calibration", "checks", "checks_enabled", "losses"]
