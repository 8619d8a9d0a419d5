"""Structured probabilistic models: the notes' "Networks" section.

* :class:`DiscreteFactor`: named-axis tensors, combined by einsum.
* :class:`BayesianNetwork`: a DAG of CPTs; BIF read/write, ancestral sampling, exact
  inference batched over evidence rows (posterior marginals, probability of evidence, most
  probable explanation), maximum-likelihood / Dirichlet / EM fitting.
"""

from .bayesnet import BayesianNetwork, ImpossibleEvidence
from .bif import BIFError, parse_bif, read_bif, write_bif
from .factor import DiscreteFactor
from .inference import Plan, elimination_order, plan

__all__ = [
    "BIFError",
    "BayesianNetwork",
    "DiscreteFactor",
    "ImpossibleEvidence",
    "Plan",
    "elimination_order",
    "parse_bif",
    "plan",
    "read_bif",
    "write_bif",
]
