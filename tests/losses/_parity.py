"""Helpers shared by the parity tests: run a loss with autograd and compare two runs.

A *run* calls ``fn(**inputs)`` with ``requires_grad`` on the inputs named in ``wrt`` and
back-propagates a fixed pseudo-random cotangent of the output's shape (not just ones, so
that every element's gradient is weighted differently). Two functions given the same
inputs therefore agree on values and gradients exactly when their results agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")
FLOATS = (torch.float32, torch.float64)
HALVES = (torch.float16, torch.bfloat16)

# Tolerances when mldl computes something itself (an extra reduction, a weighted mean, its
# own kernel) rather than calling PyTorch's kernel unchanged.
TIGHT = {
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.float32: {"rtol": 2e-6, "atol": 2e-6},
    torch.float16: {"rtol": 2e-2, "atol": 2e-2},
    torch.bfloat16: {"rtol": 5e-2, "atol": 5e-2},
}
EXACT = {"rtol": 0.0, "atol": 0.0}
# Against the float64 reference (a different but equivalent formula): a few ulps of float64
# times the size of the intermediate sums.
REF = {"rtol": 1e-9, "atol": 1e-10}
# Half-precision smoke checks against the float64 reference.
HALF_VS_REF = {
    torch.float16: {"rtol": 2e-2, "atol": 2e-2},
    torch.bfloat16: {"rtol": 6e-2, "atol": 6e-2},
}


@contextmanager
def one_thread() -> Iterator[None]:
    """Run with one intra-op thread, then restore the setting.

    The parity tests use tiny tensors, for which a parallel region is pure overhead: on a
    loaded 2-core machine PyTorch's log_sigmoid (used by bce_with_logits and sigmoid_focal)
    spends ~15 ms per call waking its second OpenMP thread, against ~2 µs on one thread.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def cotangent(shape: torch.Size, dtype: torch.dtype, seed: int = 1234) -> Tensor:
    """A fixed pseudo-random cotangent (values in [0.5, 1.5), so never zero)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) + 0.5).to(dtype)


def run(
    fn: Callable[..., Tensor], inputs: dict[str, object], wrt: Iterable[str] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    """``fn(**inputs)`` and the gradients of ``<out, cotangent>`` w.r.t. the ``wrt`` inputs."""
    wrt = tuple(wrt)
    leaves = {
        k: (v.detach().clone().requires_grad_(True) if k in wrt else v) for k, v in inputs.items()
    }
    out = fn(**leaves)
    if not wrt:
        return out.detach(), {}
    if not out.requires_grad:  # a constant (e.g. a reference with no active term)
        return out, {k: torch.zeros_like(leaves[k]) for k in wrt}
    g = cotangent(out.shape, out.dtype)
    grads = torch.autograd.grad(out, [leaves[k] for k in wrt], g, allow_unused=True)
    return out.detach(), {
        k: (torch.zeros_like(leaves[k]) if gr is None else gr)
        for k, gr in zip(wrt, grads, strict=True)
    }


def assert_runs_close(
    got: tuple[Tensor, dict[str, Tensor]],
    want: tuple[Tensor, dict[str, Tensor]],
    *,
    rtol: float,
    atol: float,
    equal_nan: bool = False,
    check_dtype: bool = True,
) -> None:
    """Values and every gradient of two runs agree, compared in the wider of the two dtypes."""
    (v1, g1), (v2, g2) = got, want
    assert v1.shape == v2.shape, f"value shapes differ: {tuple(v1.shape)} vs {tuple(v2.shape)}"
    if check_dtype:
        assert v1.dtype == v2.dtype, f"value dtypes differ: {v1.dtype} vs {v2.dtype}"
    wide = torch.promote_types(v1.dtype, v2.dtype)
    torch.testing.assert_close(
        v1.to(wide), v2.to(wide), rtol=rtol, atol=atol, equal_nan=equal_nan, msg=_msg("value")
    )
    assert g1.keys() == g2.keys()
    for k in g1:
        wide = torch.promote_types(g1[k].dtype, g2[k].dtype)
        torch.testing.assert_close(
            g1[k].to(wide),
            g2[k].to(wide),
            rtol=rtol,
            atol=atol,
            equal_nan=equal_nan,
            msg=_msg(f"gradient w.r.t. {k}"),
        )


def _msg(what: str) -> Callable[[str], str]:
    return lambda m: f"{what}: {m}"


def check(
    fn: Callable[..., Tensor],
    ref: Callable[..., Tensor],
    inputs: dict[str, object],
    wrt: Iterable[str] = (),
    *,
    tol: dict[str, float],
    equal_nan: bool = False,
    check_dtype: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``fn`` and ``ref`` on the same inputs and compare values and gradients."""
    got = run(fn, inputs, wrt)
    want = run(ref, inputs, wrt)
    assert_runs_close(got, want, equal_nan=equal_nan, check_dtype=check_dtype, **tol)
    return got


def cast(inputs: dict[str, object], dtype: torch.dtype) -> dict[str, object]:
    """Floating tensors to ``dtype``; everything else unchanged."""
    return {
        k: (v.to(dtype) if isinstance(v, Tensor) and v.is_floating_point() else v)
        for k, v in inputs.items()
    }


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"
