"""Shared helpers for the normalization tests."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from torch import Tensor, nn

F32, F64 = torch.float32, torch.float64


def tol(dtype: torch.dtype) -> dict:
    """assert_close tolerances for comparing two computations of one quantity."""
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == F32 else {"atol": 1e-10, "rtol": 1e-10}


def data(*shape: int, dtype: torch.dtype = F64, scale: float = 2.0, shift: float = 1.0) -> Tensor:
    """Random input whose channels (dim 1, when there is one) have different means and
    spreads, so that statistics of the wrong scope give visibly different results."""
    x = torch.randn(*shape, dtype=dtype)
    if len(shape) >= 2:
        c = shape[1]
        view = (1, c, *([1] * (len(shape) - 2)))
        spread = torch.linspace(0.5, scale, c, dtype=dtype).view(view)
        offset = torch.linspace(-shift, 2 * shift, c, dtype=dtype).view(view)
        x = x * spread + offset
    return x


@contextlib.contextmanager
def raises(exc: type[Exception], owner: str, *fragments: str):
    """The error is ``exc``, its message starts with ``owner:`` (the class or function) and
    contains every fragment (the argument's name)."""
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value)
    assert message.startswith(f"{owner}:"), message
    for f in fragments:
        assert f in message, message


def randomize_parameters(module: nn.Module) -> None:
    """Replace every parameter by random values (biases around 0, the others in [0.5, 1.5]),
    so that an identity affine cannot hide a mistake."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.5)
            else:
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5))


def buffers(module: nn.Module) -> dict[str, Tensor]:
    """A copy of every buffer."""
    return {k: v.clone() for k, v in module.named_buffers()}


def roundtrip(state: dict) -> dict:
    """A state dict through torch.save / torch.load(weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)
