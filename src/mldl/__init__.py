"""mldl: the notes "Machine Learning and Deep Learning" made executable.

* :mod:`mldl.losses`: every loss the notes name, PyTorch's conventions, checked inputs.
* ``mldl.checks(True)`` (or ``MLDL_CHECKS=1``): value checks on every input.
"""

from . import losses
from ._checks import checks, checks_enabled

__version__ = "0.1.0"

__all__ = ["__version__", "checks", "checks_enabled", "losses"]
