r"""Weight normalization and spectral normalization, as ``torch.nn.utils.parametrize``
parametrizations (PyTorch's own, which already load old ``weight_g``/``weight_v``
checkpoints), with what they lack: the weight-norm paper's data-dependent initialisation,
and reading a layer's current spectral norm.

Weight normalization, the notes' formula: :math:`w = \frac{g}{\lVert v \rVert} v`,
separating the norm of each output unit's weight vector from its direction.

Spectral normalization divides a weight by its largest singular value
:math:`\sigma(W)`, estimated by power iteration (one step per training forward, the vectors
persisted), bounding the layer's Lipschitz constant by 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from .. import _checks

__all__ = ["init_weight_norm_", "spectral_norm", "spectral_sigma", "weight_norm"]


def weight_norm(module: nn.Module, name: str = "weight", dim: int | None = 0) -> nn.Module:
    r"""Reparametrize ``module.<name>`` as :math:`g\,v/\lVert v \rVert` (norm over every
    dimension but ``dim``; ``None`` for the whole tensor). The parameters become
    ``parametrizations.<name>.original0`` (g) and ``original1`` (v); a state dict with the
    old ``<name>_g`` / ``<name>_v`` keys (``torch.nn.utils.weight_norm``) loads into it.

    >>> import torch
    >>> layer = weight_norm(torch.nn.Linear(3, 2))
    >>> g = layer.parametrizations.weight.original0
    >>> torch.allclose(layer.weight.norm(dim=1), g.squeeze(1))
    True
    """
    _check_param(module, name, "weight_norm")
    return parametrizations.weight_norm(module, name, dim)


def spectral_norm(
    module: nn.Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
) -> nn.Module:
    """Reparametrize ``module.<name>`` as ``W / σ(W)`` (PyTorch's parametrization: 15
    power-iteration steps at registration, then ``n_power_iterations`` per training forward;
    none in eval; u and v cloned, so two forwards before one backward work)."""
    fn = "spectral_norm"
    _check_param(module, name, fn)
    n = _checks.integer(n_power_iterations, "n_power_iterations", fn, low=1)
    eps = _checks.number(eps, "eps", fn, low=0.0, low_open=True)
    return parametrizations.spectral_norm(module, name, n, eps, dim)


def spectral_sigma(module: nn.Module, name: str = "weight") -> Tensor:
    """The spectral norm (largest singular value) of the weight a layer uses now, exactly
    (by SVD): about 1 for a spectrally normalised layer, the Lipschitz bound it gives.
    Reading it changes nothing (no power-iteration step, even in training mode)."""
    _check_param(module, name, "spectral_sigma")
    if parametrize.is_parametrized(module, name):
        chain = module.parametrizations[name]
        modes = [p.training for p in chain]
        chain.eval()  # PyTorch's spectral norm steps its power iteration on every read in training
        try:
            weight = getattr(module, name).detach()
        finally:
            for p, training in zip(chain, modes, strict=True):
                p.train(training)
    else:
        weight = getattr(module, name).detach()
    matrix = weight.flatten(1) if weight.dim() > 1 else weight.unsqueeze(0)
    return torch.linalg.matrix_norm(matrix, ord=2)


@torch.no_grad()
def init_weight_norm_(module: nn.Module, x: Tensor, name: str = "weight") -> nn.Module:
    r"""The weight-norm paper's data-dependent initialisation, for a weight-normalised
    ``nn.Linear`` or ``nn.Conv*d`` (dim 0) and a batch ``x`` of its inputs: scale g and set
    the bias so that the pre-activations of this batch have zero mean and unit variance per
    output unit, :math:`g \leftarrow g/\sigma`, :math:`b \leftarrow -\mu/\sigma`.

    >>> import torch
    >>> layer = weight_norm(torch.nn.Linear(5, 3))
    >>> x = torch.randn(256, 5)
    >>> y = init_weight_norm_(layer, x)(x)
    >>> bool(y.mean(0).abs().max() < 1e-5 and (y.std(0, correction=0) - 1).abs().max() < 1e-4)
    True
    """
    fn = "init_weight_norm_"
    if not parametrize.is_parametrized(module, name):
        raise ValueError(f"{fn}: module: {name!r} is not weight-normalised (call weight_norm)")
    _checks.floating(x, "x", fn)
    bias = getattr(module, "bias", None)
    if bias is not None:
        bias.zero_()
    y = module(x)
    dims = [0, *range(2, y.dim())]
    var, mean = torch.var_mean(y, dim=dims, correction=0)
    scale = torch.rsqrt(var + 1e-8)
    g = getattr(module.parametrizations, name).original0
    g.mul_(scale.view(g.shape))
    if bias is not None:
        bias.copy_(-mean * scale)
    return module


def _check_param(module: nn.Module, name: str, fn: str) -> None:
    """``module`` is a module with a tensor ``name`` (checked without reading a
    parametrized tensor, which could step a power iteration)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"{fn}: module: expected an nn.Module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"{fn}: name: expected a str, got {type(name).__name__}")
    present = parametrize.is_parametrized(module, name) or isinstance(
        module._parameters.get(name, module._buffers.get(name)), Tensor
    )
    if not present:
        raise ValueError(f"{fn}: name: {type(module).__name__} has no tensor {name!r}")
