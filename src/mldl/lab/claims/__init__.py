"""Claim modules, one per section of the notes; importing this package registers them all."""

from . import embeddings, losses, mle, sequence  # noqa: F401
