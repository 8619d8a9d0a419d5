"""Claim modules, one per section of the notes; importing this package registers them all.

``ORDER`` is the order of the report: the notes' own (maximum likelihood, networks, label
smoothing and calibration, normalization, losses), with claims of sections not listed last.
"""

from . import calibration, embeddings, losses, mle, norm_sequence, sequence, smoothing  # noqa: F401

ORDER = ("mle", "smoothing", "calibration", "losses", "embeddings", "sequence")
