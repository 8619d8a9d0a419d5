"""Structured probabilistic models: the notes' "Networks" section.

* :class:`DiscreteFactor`: named-axis tensors, combined by einsum.
* :class:`BayesianNetwork`: a DAG of CPTs; BIF read/write, ancestral sampling, exact
  inference batched over evidence rows (posterior marginals, probability of evidence, most
  probable explanation), maximum-likelihood / Dirichlet / EM fitting.
* :class:`LinearChainCRF`: the conditional random field of sequence labelling.
* :class:`MarkovRandomField`: the undirected model (cycles allowed): exact log Z and
  marginals by contraction, Gibbs sampling from Markov blankets, loopy belief propagation;
  Ising lattices and the fully visible Boltzmann machine.
* :class:`RBM`, :class:`DBN`, :class:`DBM`: Boltzmann machines with latent variables, trained
  by CD-k / persistent CD, with exact and AIS log partition functions.
"""

from .bayesnet import BayesianNetwork, ImpossibleEvidence
from .bif import BIFError, parse_bif, read_bif, write_bif
from .boltzmann import DBM, DBN, RBM, LogPartition, ais_schedule
from .crf import LinearChainCRF, allowed_transitions, viterbi_decode
from .factor import DiscreteFactor
from .inference import Plan, elimination_order, plan
from .markov import (
    ISING_2D_CRITICAL_TEMPERATURE,
    BeliefPropagationResult,
    IntractableInference,
    MarkovRandomField,
    ising_chain_log_partition,
    magnetization,
    onsager_magnetization,
)

__all__ = [
    "DBM",
    "DBN",
    "ISING_2D_CRITICAL_TEMPERATURE",
    "RBM",
    "BIFError",
    "BayesianNetwork",
    "BeliefPropagationResult",
    "DiscreteFactor",
    "ImpossibleEvidence",
    "IntractableInference",
    "LinearChainCRF",
    "LogPartition",
    "MarkovRandomField",
    "Plan",
    "ais_schedule",
    "allowed_transitions",
    "elimination_order",
    "ising_chain_log_partition",
    "magnetization",
    "onsager_magnetization",
    "parse_bif",
    "plan",
    "read_bif",
    "viterbi_decode",
    "write_bif",
]
