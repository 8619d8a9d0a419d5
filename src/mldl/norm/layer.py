r"""Per-sample normalizations over features: LayerNorm and RMSNorm (PyTorch's kernels, with
checked input) and ScaleNorm.

LayerNorm, the notes' formula over the m features of each sample i:

.. math::
    \mu_i = \frac1m\sum_j x_{ij},\qquad \sigma_i^2 = \frac1m\sum_j (x_{ij} - \mu_i)^2,\qquad
    \hat x_{ij} = \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}}
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks

__all__ = ["LayerNorm", "RMSNorm", "ScaleNorm", "scale_norm"]


def _check_trailing(x: Tensor, shape: tuple[int, ...], fn: str) -> None:
    _checks.floating(x, "input", fn)
    if tuple(x.shape[x.dim() - len(shape) :]) != shape or x.dim() < len(shape):
        raise ValueError(
            f"{fn}: input: expected trailing dimensions {shape} (normalized_shape), got "
            f"shape {tuple(x.shape)}"
        )


def _check_eps(eps: float | None, fn: str) -> float | None:
    return None if eps is None else _checks.number(eps, "eps", fn, low=0.0, low_open=True)


class LayerNorm(nn.LayerNorm):
    """``torch.nn.LayerNorm`` (same parameters, state dict and kernel) with checked input:
    the notes' per-sample normalization over the trailing ``normalized_shape``."""

    def __init__(self, normalized_shape, eps: float = 1e-5, *args, **kwargs) -> None:
        super().__init__(normalized_shape, _check_eps(eps, "LayerNorm"), *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        _check_trailing(input, tuple(self.normalized_shape), "LayerNorm")
        return super().forward(input)


class RMSNorm(nn.RMSNorm):
    r"""``torch.nn.RMSNorm`` with checked input: :math:`y = x / \sqrt{\epsilon +
    \mathrm{mean}(x^2)}\cdot\gamma`, LayerNorm without the centring."""

    def __init__(self, normalized_shape, eps: float | None = None, *args, **kwargs) -> None:
        super().__init__(normalized_shape, _check_eps(eps, "RMSNorm"), *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        _check_trailing(input, tuple(self.normalized_shape), "RMSNorm")
        return super().forward(input)


def scale_norm(input: Tensor, g: Tensor | float, eps: float = 1e-5) -> Tensor:
    r"""ScaleNorm (Nguyen & Salazar 2019): :math:`g\, x / \max(\lVert x \rVert_2, \epsilon)`
    over the last dimension.

    >>> import torch
    >>> scale_norm(torch.tensor([[3.0, 4.0]]), 2.0)
    tensor([[1.2000, 1.6000]])
    """
    return F.normalize(input, p=2.0, dim=-1, eps=eps) * g


class ScaleNorm(nn.Module):
    r"""ScaleNorm: :math:`\mathrm{ScaleNorm}(x; g) = g\,\frac{x}{\lVert x \rVert}` over the
    last dimension, with one learned scalar g initialised to :math:`\sqrt{d}` (so that a
    normalised vector has entries of about unit size, as LayerNorm's do).

    The notes: centring "does not really matter ... the scale is what is important"; one
    parameter instead of LayerNorm's 2d.

    Shape:
        input: :math:`(*, d)`; output: same.

    >>> import torch
    >>> sn = ScaleNorm(4)
    >>> sn.g.item(), sn(torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
    (2.0, tensor([[1., 1., 1., 1.]], grad_fn=<MulBackward0>))
    """

    def __init__(self, dim: int, eps: float = 1e-5, *, device=None, dtype=None) -> None:
        super().__init__()
        fn = "ScaleNorm"
        self.dim = _checks.integer(dim, "dim", fn, low=1)
        self.eps = _checks.number(eps, "eps", fn, low=0.0, low_open=True)
        self.g = nn.Parameter(torch.tensor(math.sqrt(dim), device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"

    def forward(self, input: Tensor) -> Tensor:
        _check_trailing(input, (self.dim,), "ScaleNorm")
        return scale_norm(input, self.g, self.eps)
