"""Structured probabilistic models: the notes' "Networks" section.

* :class:`DiscreteFactor`: named-axis tensors, combined by einsum.
* :class:`BayesianNetwork`: a DAG of CPTs; BIF read/write, ancestral sampling, exact
  inference batched over evidence rows (posterior marginals, probability of evidence, most
  probable explanation), maximum-likelihood / Dirichlet / EM fitting.
* :class:`LinearChainCRF`: the conditional random field of sequence labelling.
"""

from .bayesnet import BayesianNetwork, ImpossibleEvidence
from .bif import BIFError, parse_bif, read_bif, write_bif
from .crf import LinearChainCRF, allowed_transitions, viterbi_decode
from .factor import DiscreteFactor
from .inference import Plan, elimination_order, plan

__all__ = [
    "BIFError",
    "BayesianNetwork",
    "DiscreteFactor",
    "ImpossibleEvidence",
    "LinearChainCRF",
    "Plan",
    "allowed_transitions",
    "elimination_order",
    "parse_bif",
    "plan",
    "read_bif",
    "viterbi_decode",
    "write_bif",
]
