"""Data the lab runs on: scikit-learn's digits (shipped with the package, nothing is
downloaded) and seeded synthetic sets."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Split:
    """Train / validation / test tensors: features float32 in [0, 1], labels int64."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max()) + 1

    def images(self) -> Split:
        """The same split with features as (N, 1, 8, 8) images, for convolutional models."""
        as_img = lambda x: x.view(-1, 1, 8, 8)  # noqa: E731
        return Split(
            as_img(self.x_train),
            self.y_train,
            as_img(self.x_val),
            self.y_val,
            as_img(self.x_test),
            self.y_test,
        )


@functools.lru_cache(maxsize=8)
def digits(seed: int = 0, val: float = 0.2, test: float = 0.25) -> Split:
    """scikit-learn's 1,797 8x8 digit images, pixels scaled to [0, 1], split at random
    (seeded) into train / validation / test."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test, n_val = round(test * len(y)), round(val * len(y))
    te, va, tr = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return Split(x[tr], y[tr], x[va], y[va], x[te], y[te])
