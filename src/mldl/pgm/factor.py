r"""Discrete factors: a tensor with one named axis per variable.

The notes' "unstructured" model is one such tensor over all n variables: k^n entries. A
structured model is a product of small factors, :math:`P(x) = \prod_f \phi_f(x_f)`; every
operation here (product, marginalisation, reduction by evidence, normalisation) is an
``einsum`` over named axes, so factors of different scopes combine without manual
broadcasting. ``log=True`` factors hold log-potentials (energies of a Markov random field):
their product is a sum and their marginalisation a ``logsumexp``.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["DiscreteFactor"]

_LETTERS = string.ascii_letters


class DiscreteFactor:
    """A non-negative function of discrete variables, one tensor axis per variable.

    Args:
        variables: the variables' names, in axis order.
        values: tensor of shape ``(k_1, ..., k_n)`` (potentials, or log-potentials with
            ``log=True``).
        state_names: optional ``{variable: [state, ...]}`` (default: ``0..k-1``).
        log: whether ``values`` are log-potentials.

    >>> import torch
    >>> f = DiscreteFactor(["a", "b"], torch.tensor([[0.1, 0.2], [0.3, 0.4]]))
    >>> g = DiscreteFactor(["b"], torch.tensor([2.0, 1.0]))
    >>> h = f * g                                   # scope (a, b)
    >>> h.marginalize(["b"]).values                 # sum over b
    tensor([0.4000, 1.0000])
    >>> h.reduce({"a": 1}).values                   # a observed in state 1
    tensor([0.6000, 0.4000])
    """

    def __init__(
        self,
        variables: Sequence[str],
        values: Tensor,
        state_names: Mapping[str, Sequence[str]] | None = None,
        *,
        log: bool = False,
    ) -> None:
        variables = tuple(variables)
        if len(set(variables)) != len(variables):
            raise ValueError(f"DiscreteFactor: variables: names repeat in {variables}")
        if not isinstance(values, Tensor):
            raise TypeError(
                f"DiscreteFactor: values: expected a tensor, got {type(values).__name__}"
            )
        if values.dim() != len(variables):
            raise ValueError(
                f"DiscreteFactor: values: expected one axis per variable ({len(variables)}), "
                f"got shape {tuple(values.shape)}"
            )
        if len(variables) > len(_LETTERS):
            raise ValueError(f"DiscreteFactor: variables: at most {len(_LETTERS)} per factor")
        self.variables = variables
        self.values = values
        self.log = log
        names = dict(state_names or {})
        self.state_names = {
            v: list(names[v]) if v in names else [str(i) for i in range(k)]
            for v, k in zip(variables, values.shape, strict=True)
        }
        for v, k in zip(variables, values.shape, strict=True):
            if len(self.state_names[v]) != k:
                raise ValueError(
                    f"DiscreteFactor: state_names: {v!r} has {len(self.state_names[v])} names "
                    f"for {k} states"
                )

    @property
    def cardinality(self) -> dict[str, int]:
        return dict(zip(self.variables, self.values.shape, strict=True))

    def __repr__(self) -> str:
        kind = "log-factor" if self.log else "factor"
        scope = ", ".join(f"{v}:{k}" for v, k in self.cardinality.items())
        return f"<DiscreteFactor ({kind}) over ({scope})>"

    # ------------------------------------------------------------------------ operations

    def _aligned(self, scope: Sequence[str]) -> Tensor:
        """Values with axes permuted and unsqueezed to ``scope`` (a superset)."""
        order = [self.variables.index(v) for v in scope if v in self.variables]
        t = self.values.permute(order) if order != list(range(len(order))) else self.values
        shape = [self.cardinality[v] if v in self.variables else 1 for v in scope]
        return t.reshape(shape)

    def product(self, other: DiscreteFactor) -> DiscreteFactor:
        """The product over the union scope (this factor's variables first, then the other's
        new ones): :math:`\\phi_1(x_1)\\phi_2(x_2)`; a sum for log-factors."""
        if self.log != other.log:
            raise ValueError("DiscreteFactor.product: one factor is in log space, the other not")
        for v in set(self.variables) & set(other.variables):
            if self.cardinality[v] != other.cardinality[v]:
                raise ValueError(
                    f"DiscreteFactor.product: {v!r} has {self.cardinality[v]} states here and "
                    f"{other.cardinality[v]} there"
                )
        scope = self.variables + tuple(v for v in other.variables if v not in self.variables)
        names = {**other.state_names, **self.state_names}
        if self.log:
            return DiscreteFactor(
                scope, self._aligned(scope) + other._aligned(scope), names, log=True
            )
        letter = {v: _LETTERS[i] for i, v in enumerate(scope)}
        spec = (
            "".join(letter[v] for v in self.variables)
            + ","
            + "".join(letter[v] for v in other.variables)
            + "->"
            + "".join(letter[v] for v in scope)
        )
        return DiscreteFactor(scope, torch.einsum(spec, self.values, other.values), names)

    __mul__ = product

    def marginalize(self, variables: Sequence[str]) -> DiscreteFactor:
        """Sum out ``variables`` (``logsumexp`` for log-factors)."""
        unknown = [v for v in variables if v not in self.variables]
        if unknown:
            raise ValueError(f"DiscreteFactor.marginalize: {unknown} not in scope {self.variables}")
        if len(set(variables)) != len(variables):
            raise ValueError(f"DiscreteFactor.marginalize: variables names one twice: {variables}")
        dims = [self.variables.index(v) for v in variables]
        keep = tuple(v for v in self.variables if v not in variables)
        if not dims:
            return self
        values = torch.logsumexp(self.values, dim=dims) if self.log else self.values.sum(dim=dims)
        return DiscreteFactor(keep, values, {v: self.state_names[v] for v in keep}, log=self.log)

    def reduce(self, evidence: Mapping[str, int | str]) -> DiscreteFactor:
        """Fix observed variables to their states (index or state name); they leave the
        scope."""
        values, keep = self.values, list(self.variables)
        index: list[object] = [slice(None)] * len(self.variables)
        for v, state in evidence.items():
            if v not in self.variables:
                continue
            names = self.state_names[v]
            if isinstance(state, str):
                if state not in names:
                    raise ValueError(
                        f"DiscreteFactor.reduce: {v!r} has no state {state!r} (states: {names})"
                    )
                state = names.index(state)
            else:
                state = _state_index(v, state)
            if not 0 <= int(state) < len(names):
                raise ValueError(
                    f"DiscreteFactor.reduce: {v!r}: state index {state} outside [0, {len(names)})"
                )
            index[self.variables.index(v)] = int(state)
            keep.remove(v)
        values = values[tuple(index)]
        return DiscreteFactor(keep, values, {v: self.state_names[v] for v in keep}, log=self.log)

    def normalize(self) -> DiscreteFactor:
        """Scaled to sum to 1 (a distribution over its scope)."""
        if self.log:
            return DiscreteFactor(
                self.variables,
                self.values - torch.logsumexp(self.values.flatten(), 0),
                self.state_names,
                log=True,
            )
        return DiscreteFactor(self.variables, self.values / self.values.sum(), self.state_names)

    def to_log(self) -> DiscreteFactor:
        return (
            self
            if self.log
            else DiscreteFactor(self.variables, self.values.log(), self.state_names, log=True)
        )

    def to_linear(self) -> DiscreteFactor:
        return (
            self
            if not self.log
            else DiscreteFactor(self.variables, self.values.exp(), self.state_names)
        )


def _state_index(variable: str, state: object) -> int:
    """An integer state index (Python, NumPy or 0-d integer tensor); bools and floats are
    refused rather than truncated."""
    if isinstance(state, bool) or (isinstance(state, torch.Tensor) and state.dtype == torch.bool):
        raise TypeError(f"DiscreteFactor.reduce: the state of {variable!r} is a bool: {state!r}")
    try:
        return operator.index(state)
    except TypeError:
        raise TypeError(
            f"DiscreteFactor.reduce: the state of {variable!r} must be an integer index or a "
            f"state name, got {state!r}"
        ) from None
