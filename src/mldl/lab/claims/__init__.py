"""Claim modules, one per section of the notes; importing this package registers them all."""

from . import calibration, embeddings, losses, mle, sequence, smoothing  # noqa: F401
