"""Claim modules, one per section of the notes; importing this package registers them all.

``ORDER`` is the order of the report: the notes' own (maximum likelihood, networks, label
smoothing and calibration, normalization, losses), with claims of sections not listed last.
"""

from . import (  # noqa: F401
    boltzmann,
    calibration,
    crf,
    embeddings,
    losses,
    mle,
    norm_batch,
    norm_reparam,
    norm_sequence,
    pgm,
    sequence,
    smoothing,
)

ORDER = (
    "mle",
    "bn",
    "mrf",
    "boltzmann",
    "crf",
    "smoothing",
    "calibration",
    "norm",
    "losses",
    "embeddings",
    "sequence",
)
