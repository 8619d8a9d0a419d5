"""Shared input validation: one place for every rule about what a function accepts.

Two kinds of checks, as the design asks:

* **Cheap checks** look only at metadata (type, dtype, shape, a few scalars) and always run.
  Class-index range checks need a pass over the target; they always run on CPU (where the
  pass and the comparison cost nothing extra) and, on accelerators, only with value checks
  on, because there they would force a host synchronisation.
* **Value checks** look at every element: NaN/inf, and whether a tensor lies in the domain
  a loss declares (the notes' table of logits, odds, probabilities, log-likelihoods). They
  run under ``mldl.checks(True)`` or with the environment variable ``MLDL_CHECKS=1``.

Every error names the argument, says what was expected and what came.

>>> import torch, mldl
>>> with mldl.checks(True):
...     mldl.losses.nll(torch.rand(4, 3), torch.tensor([0, 1, 2, 0]))
Traceback (most recent call last):
...
ValueError: nll: input: expected log-probabilities (values <= 0), got values up to ...
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "checks",
    "checks_enabled",
]


def _env_flag() -> bool:
    return os.environ.get("MLDL_CHECKS", "0").strip().lower() in {"1", "true", "yes", "on"}


_state = {"enabled": _env_flag()}


class _ChecksSetting(AbstractContextManager):
    """Returned by :func:`checks`: the new setting is already in force; leaving a ``with``
    block restores the previous one."""

    def __init__(self, previous: bool):
        self._previous = previous

    def __exit__(self, *exc) -> None:
        _state["enabled"] = self._previous

    def __bool__(self) -> bool:
        return _state["enabled"]

    def __repr__(self) -> str:
        return f"mldl.checks({_state['enabled']})"


def checks(enabled: bool = True) -> _ChecksSetting:
    """Turn value checks on or off, for good or for a ``with`` block.

    >>> import mldl
    >>> with mldl.checks(True):
    ...     mldl.checks_enabled()
    True
    """
    if not isinstance(enabled, (bool, numbers.Integral)) or enabled not in (0, 1):
        raise TypeError(f"checks: enabled: expected True or False, got {_describe(enabled)}")
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled)
    return _ChecksSetting(previous)


def checks_enabled() -> bool:
    """Whether value checks are on (``mldl.checks(True)`` or ``MLDL_CHECKS=1``)."""
    return _state["enabled"]


def _where(fn: str, name: str) -> str:
    return f"{fn}: {name}" if fn else name


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a {_dtype_name(x.dtype)} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ---------------------------------------------------------------------------- cheap checks


def tensor(x: object, name: str, fn: str = "") -> Tensor:
    """``x`` must be a tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{_where(fn, name)}: expected a torch.Tensor, got {_describe(x)}")
    return x


def floating(x: object, name: str, fn: str = "") -> Tensor:
    """``x`` must be a floating-point tensor."""
    x = tensor(x, name, fn)
    if not x.is_floating_point():
        raise TypeError(
            f"{_where(fn, name)}: expected a floating-point tensor, got {_dtype_name(x.dtype)}"
        )
    return x


def optional_tensor(x: object, name: str, fn: str = "") -> Tensor | None:
    """``None`` or a tensor (for module constructors' weight buffers)."""
    return None if x is None else tensor(x, name, fn)


def same_shape(a: Tensor, b: Tensor, names: tuple[str, str], fn: str = "") -> None:
    """``a`` and ``b`` must have the same shape (no silent broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{fn + ': ' if fn else ''}{names[1]} must have the same shape as {names[0]}: "
            f"{names[0]} is {tuple(a.shape)}, {names[1]} is {tuple(b.shape)}"
        )


def broadcastable(a: Tensor, b: Tensor, names: tuple[str, str], fn: str = "") -> None:
    """``b`` must broadcast to ``a``'s shape without enlarging it."""
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        shape = None
    if shape != a.shape:
        raise ValueError(
            f"{fn + ': ' if fn else ''}{names[1]} of shape {tuple(b.shape)} does not "
            f"broadcast to {names[0]}'s shape {tuple(a.shape)}"
        )


def ndim(x: Tensor, allowed: Sequence[int], name: str, fn: str = "") -> None:
    """``x.dim()`` must be one of ``allowed``."""
    if x.dim() not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(
            f"{_where(fn, name)}: expected a {want}-dimensional tensor, got shape {tuple(x.shape)}"
        )


def same_device(tensors: dict[str, Tensor | None], fn: str = "") -> None:
    """All given tensors live on one device."""
    seen = {n: t.device for n, t in tensors.items() if isinstance(t, Tensor)}
    if len(set(seen.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in seen.items())
        raise ValueError(f"{fn}: all tensors must be on one device, got {listing}")


def one_of(value: object, allowed: Sequence[object], name: str, fn: str = "") -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        want = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{_where(fn, name)}: expected one of {want}, got {value!r}")


def number(
    value: object,
    name: str,
    fn: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A Python (or 0-d tensor) real number within ``[low, high]`` (ends open if asked)."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_where(fn, name)}: expected a real number, got {_describe(value)}")
    v = float(value)
    bad = v != v  # NaN
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{lo}, {hi}{right}"
        raise ValueError(f"{_where(fn, name)}: expected a value in {interval}, got {v!r}")
    return v


def _is_bool(value: object) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool


def integer(
    value: object, name: str, fn: str = "", *, low: int | None = None, high: int | None = None
) -> int:
    """A Python (or numpy, or 0-d integer tensor) integer within ``[low, high]``."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{_where(fn, name)}: expected an int, got {_describe(value)}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{_where(fn, name)}: expected an int in [{lo}, {hi}], got {v}")
    return v


def class_weight(
    weight: Tensor | None,
    num_classes: int,
    input: Tensor,
    fn: str = "",
    name: str = "weight",
    input_name: str = "input",
) -> None:
    """A per-class weight: 1-D, one entry per class, floating, on the input's device."""
    if weight is None:
        return
    floating(weight, name, fn)
    if weight.dim() != 1 or weight.shape[0] != num_classes:
        raise ValueError(
            f"{_where(fn, name)}: expected a 1-D tensor with one entry per class "
            f"({num_classes}), got shape {tuple(weight.shape)}"
        )
    same_device({input_name: input, name: weight}, fn)
    values(weight, NONNEGATIVE, name, fn)


def class_indices(
    target: Tensor,
    num_classes: int,
    name: str = "target",
    fn: str = "",
    *,
    ignore_index: int | None = None,
) -> Tensor:
    """Class-index targets: an integer tensor with values in ``[0, num_classes)`` or equal to
    ``ignore_index``. Returns it as int64 (any integer dtype is accepted).

    The range check needs a pass over the values: it always runs on CPU and, on other
    devices, with value checks on (there it would force a host synchronisation).
    """
    tensor(target, name, fn)
    if ignore_index is not None:
        ignore_index = integer(ignore_index, "ignore_index", fn)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"{_where(fn, name)}: expected integer class indices, got {_dtype_name(target.dtype)}"
            " (for class probabilities pass a float tensor of the input's shape)"
        )
    target = target.long()
    if target.numel() and (target.device.type == "cpu" or checks_enabled()):
        valid = (target >= 0) & (target < num_classes)
        if ignore_index is not None:
            valid |= target == ignore_index
        if not bool(valid.all()):
            bad = target[~valid]
            ignore = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(
                f"{_where(fn, name)}: expected class indices in [0, {num_classes - 1}]{ignore}, "
                f"got {bad.numel()} value(s) outside, e.g. {bad[0].item()}"
            )
    return target


# ---------------------------------------------------------------------------- value checks


@dataclass(frozen=True)
class Domain:
    """What a tensor's values must be: a row of the notes' table, or a target's range.

    ``low``/``high`` bound the values (``None``: unbounded); ``inf`` says which infinities
    are legitimate ("": none, "-": -inf only, "+-": both); ``hint`` is what is expected, in
    words, for the error message.
    """

    name: str
    low: float | None = None
    high: float | None = None
    inf: str = ""
    hint: str = ""
    advice: str = ""  # appended when the values leave the range: what was probably meant


REAL = Domain("real values", hint="finite real values")
# The inputs of bce and nll/kl_div/ctc: the two places where the notes' table is most often
# mixed up, so their messages say what was probably meant.
PROBABILITY_INPUT = Domain(
    "probabilities",
    0.0,
    1.0,
    hint="probabilities in [0, 1]",
    advice=" (these look like logits: use bce_with_logits, which applies the sigmoid itself)",
)
LOG_PROBABILITY_INPUT = Domain(
    "log-probabilities",
    None,
    0.0,
    inf="-",
    hint="log-probabilities (values <= 0)",
    advice=" (these look like probabilities or logits: pass log_softmax of the logits)",
)
LOGITS = Domain("logits", inf="-", hint="logits in (-inf, inf), before softmax")
BINARY_LOGITS = Domain("logits", inf="+-", hint="logits in [-inf, inf], before sigmoid")
PROBABILITIES = Domain("probabilities", 0.0, 1.0, hint="probabilities in [0, 1]")
LOG_PROBABILITIES = Domain(
    "log-probabilities", None, 0.0, inf="-", hint="log-probabilities (values <= 0)"
)
NONNEGATIVE = Domain("non-negative values", 0.0, None, hint="non-negative values")
SIGNS = Domain("labels 1 or -1", -1.0, 1.0, hint="labels 1 or -1")

# log_softmax can round a hair above 0; values beyond this are not log-probabilities.
_LOG_PROB_SLACK = 1e-4


def values(x: Tensor, domain: Domain, name: str, fn: str = "") -> None:
    """With value checks on: every element of ``x`` lies in ``domain``. A no-op otherwise."""
    if not checks_enabled() or x.numel() == 0:
        return
    where = _where(fn, name)
    if not x.is_floating_point():
        x = x.double()
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{where}: expected {domain.hint}, got NaN at {_first(torch.isnan(x))}")
    posinf, neginf = torch.isposinf(x), torch.isneginf(x)
    if "+" not in domain.inf and bool(posinf.any()):
        raise ValueError(f"{where}: expected {domain.hint}, got +inf at {_first(posinf)}")
    if "-" not in domain.inf and bool(neginf.any()):
        raise ValueError(f"{where}: expected {domain.hint}, got -inf at {_first(neginf)}")
    finite = x[torch.isfinite(x)]
    if finite.numel() == 0:
        return
    lo, hi = finite.min().item(), finite.max().item()
    slack = _LOG_PROB_SLACK if domain.name == "log-probabilities" else 0.0
    if domain.high is not None and hi > domain.high + slack:
        raise ValueError(
            f"{where}: expected {domain.hint}, got values up to {hi:.6g}{domain.advice}"
        )
    if domain.low is not None and lo < domain.low:
        raise ValueError(
            f"{where}: expected {domain.hint}, got values down to {lo:.6g}{domain.advice}"
        )
    if domain is SIGNS and not bool(((finite == 1) | (finite == -1)).all()):
        other = finite[(finite != 1) & (finite != -1)][0].item()
        raise ValueError(f"{where}: expected {domain.hint}, got {other:g}")


def _row_sums_near_one(x: Tensor, dim: int) -> tuple[bool, Tensor]:
    """Whether every slice along ``dim`` sums to 1, within what ``x``'s dtype can hold: a
    sum of K values each rounded to the dtype's precision is off by about eps·sqrt(K)."""
    sums = x.double().sum(dim)
    tol = 1e-3 + 2 * torch.finfo(x.dtype).eps * x.shape[dim] ** 0.5
    return bool(((sums - 1).abs() <= tol).all()), sums


def distributions(x: Tensor, dim: int, name: str, fn: str = "") -> None:
    """With value checks on: ``x`` holds probability distributions along ``dim``."""
    if not checks_enabled() or x.numel() == 0:
        return
    values(x, PROBABILITIES, name, fn)
    ok, sums = _row_sums_near_one(x, dim)
    if not ok:
        raise ValueError(
            f"{_where(fn, name)}: expected class probabilities summing to 1 over dimension "
            f"{dim}, got sums from {sums.min().item():.6g} to {sums.max().item():.6g}"
        )


def not_probabilities(x: Tensor, name: str, fn: str = "", *, class_dim: int | None = 1) -> None:
    """With value checks on: refuse logits that look like probabilities.

    For softmax inputs (``class_dim`` given) that is every value in [0, 1] and every row
    summing to 1. For sigmoid inputs (``class_dim=None``) it is every one of at least 16
    values lying in [0, 1], which real logits almost never do. The message says how to
    proceed if the values really are logits.
    """
    if not checks_enabled() or x.numel() == 0:
        return
    finite = torch.isfinite(x).all()
    if not bool(finite) or not bool(((x >= 0) & (x <= 1)).all()):
        return
    if class_dim is None:
        if x.numel() < 16:
            return
        what = "every value lies in [0, 1]"
    else:
        if not _row_sums_near_one(x, class_dim)[0]:
            return
        what = "every value lies in [0, 1] and every row sums to 1"
    raise ValueError(
        f"{_where(fn, name)}: expected logits, got what look like probabilities ({what}). "
        "Pass the values before softmax/sigmoid; if these really are logits, call with "
        "mldl.checks(False)."
    )


def _first(mask: Tensor) -> str:
    idx = mask.nonzero()[0].tolist()
    return f"index {tuple(idx) if len(idx) > 1 else idx[0]}"
