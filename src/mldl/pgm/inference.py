r"""Exact inference by contraction: one dynamic program, batched over evidence rows.

A product of factors :math:`\prod_f \phi_f` summed over all variables is contracted one
variable at a time in an elimination order (min-fill or min-weight, the classic greedy
triangulations): multiply the factors that mention the variable, sum it out. The cliques
this creates form the junction tree; contracting along it is the tree's *collect* pass.

* Evidence enters as indicator vectors :math:`\lambda_v` (one-hot for an observed state,
  all ones otherwise), one per evidence row, so a batch of B rows with different observed
  variables shares one contraction: every tensor carries a leading batch axis.
* :math:`Z(\lambda) = P(e)`. The posterior marginals are the gradient,
  :math:`P(v = x \mid e) = \lambda_v(x)\,\partial \log Z / \partial \lambda_v(x)`: autograd
  of the collect pass *is* the distribute pass (Darwiche 2003; Eisner 2016), so one
  forward and one backward calibrate the tree for every row at once.
* Each step's result is rescaled to sum to 1 per row (its log-scale accumulated), so long
  chains of small probabilities never underflow; the scaling is part of the graph, so the
  gradient stays exact.
* Max-product (the most probable explanation) runs the same plan with ``max`` instead of
  the sum, keeping each step's arg-max for the traceback.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Plan", "elimination_order", "plan"]

_BATCH = "Z"  # the batch axis' letter in einsum specs; variables use the others
_LETTERS = [c for c in string.ascii_letters if c != _BATCH]


def elimination_order(
    scopes: Sequence[Sequence[int]],
    cards: Sequence[int],
    heuristic: str = "min_fill",
    variables: Sequence[int] | None = None,
) -> list[int]:
    """A greedy elimination order of ``variables`` (default: all) for factors over
    ``scopes`` (variable indices with cardinalities ``cards``).

    ``'min_fill'`` eliminates next the variable whose neighbours need the fewest new edges;
    ``'min_weight'`` the one whose clique (it and its neighbours) has the fewest states.
    Ties go to the smaller clique, then the lower index (deterministic).
    """
    if heuristic not in ("min_fill", "min_weight"):
        raise ValueError(
            f"elimination_order: heuristic: expected 'min_fill' or 'min_weight', got {heuristic!r}"
        )
    todo = set(range(len(cards)) if variables is None else variables)
    adj: dict[int, set[int]] = {v: set() for v in range(len(cards))}
    for scope in scopes:
        for a in scope:
            adj[a].update(b for b in scope if b != a)
    order = []

    def weight(v: int) -> float:
        w = cards[v]
        for u in adj[v]:
            w *= cards[u]
        return w

    def fill(v: int) -> int:
        nb = list(adj[v])
        return sum(1 for i, a in enumerate(nb) for b in nb[i + 1 :] if b not in adj[a])

    while todo:
        if heuristic == "min_fill":
            v = min(todo, key=lambda u: (fill(u), weight(u), u))
        else:
            v = min(todo, key=lambda u: (weight(u), u))
        nb = adj.pop(v)
        for a in nb:
            adj[a].discard(v)
            adj[a].update(b for b in nb if b != a)
        todo.remove(v)
        order.append(v)
    return order


@dataclass(frozen=True)
class Step:
    """Eliminate ``var``: combine the tensors in ``inputs`` (their scopes given), producing
    a tensor over ``scope`` (``var`` summed or maximised out)."""

    var: int
    inputs: tuple[int, ...]
    input_scopes: tuple[tuple[int, ...], ...]
    scope: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """A contraction order for factors over fixed scopes: which tensors each elimination
    step combines (tensor ids: the inputs first, then one new id per step), and which
    tensors are left over the empty scope at the end."""

    scopes: tuple[tuple[int, ...], ...]
    cards: tuple[int, ...]
    steps: tuple[Step, ...]
    scalars: tuple[int, ...]

    @property
    def width(self) -> int:
        """The largest number of states of any intermediate (the clique size, the cost)."""
        out = 1
        for s in self.steps:
            n = self.cards[s.var]
            for v in s.scope:
                n *= self.cards[v]
            out = max(out, n)
        return out

    # ----------------------------------------------------------------------- sum-product

    def log_partition(self, tensors: Sequence[Tensor], batched: Sequence[bool]) -> Tensor:
        """:math:`\\log \\sum_x \\prod_f \\phi_f(x_f)` per batch row.

        ``tensors[i]`` has the scope ``scopes[i]`` (axes in that order), with a leading
        batch axis when ``batched[i]``. Differentiable (autograd gives the marginals)."""
        live = dict(enumerate(tensors))
        has_batch = dict(enumerate(batched))
        log_scale = 0.0
        for k, step in enumerate(self.steps):
            out_id = len(self.scopes) + k
            ins = [live.pop(i) for i in step.inputs]
            bat = [has_batch.pop(i) for i in step.inputs]
            any_batch = any(bat)
            out = _sum_product(ins, step.input_scopes, bat, step.scope, step.var)
            # rescale to sum 1 per row: no underflow, and the scale is part of the graph
            if any_batch:
                total = out.reshape(out.shape[0], math.prod(out.shape[1:])).sum(1)
                out = out / _safe(total).reshape(-1, *([1] * (out.dim() - 1)))
            else:
                total = out.sum()
                out = out / _safe(total)
            log_scale = log_scale + torch.log(total)
            live[out_id], has_batch[out_id] = out, any_batch
        result = log_scale
        for i, t in live.items():  # what is left has an empty scope: one number per row
            result = result + torch.log(t.reshape(t.shape[0]) if has_batch[i] else t.reshape(()))
        return result

    # ----------------------------------------------------------------------- max-product

    def max_assignment(
        self, tensors: Sequence[Tensor], batched: Sequence[bool], batch: int
    ) -> tuple[Tensor, Tensor]:
        """The most probable joint assignment per row and its log-probability (unnormalised:
        the log of the largest product of factors). Returns (assignment (B, n), log value (B,))."""
        live = {i: torch.log(t) for i, t in enumerate(tensors)}
        has_batch = dict(enumerate(batched))
        traces = []
        total = torch.zeros(batch, dtype=tensors[0].dtype, device=tensors[0].device)
        for k, step in enumerate(self.steps):
            out_id = len(self.scopes) + k
            full = (step.var, *step.scope)
            acc = torch.zeros(
                (batch, *tuple(self.cards[v] for v in full)),
                dtype=total.dtype,
                device=total.device,
            )
            for i, sc in zip(step.inputs, step.input_scopes, strict=True):
                acc = acc + _align(live.pop(i), sc, full, has_batch.pop(i), self.cards)
            best, arg = acc.max(dim=1)
            traces.append((step, arg))
            live[out_id], has_batch[out_id] = best, True
        for i, t in live.items():
            total = total + (t.reshape(batch) if has_batch[i] else t.sum())
        assignment = torch.zeros(batch, len(self.cards), dtype=torch.long, device=total.device)
        rows = torch.arange(batch, device=total.device)
        for step, arg in reversed(traces):
            index = [rows] + [assignment[:, v] for v in step.scope]
            assignment[:, step.var] = arg[tuple(index)]
        return assignment, total


def _sum_product(ins, scopes, batched, keep, var) -> Tensor:
    r""":math:`\sum_{var} \prod_i t_i` onto the scope ``keep``, folding left to right in
    two-operand einsums (the last one sums ``var`` out): every intermediate stays within the
    clique (``keep`` plus ``var``), and no contraction-path search runs (``torch.einsum``
    asks opt_einsum for a path whenever it gets three operands or more, which costs more
    than the contraction itself on grids)."""
    letter = {v: _LETTERS[j] for j, v in enumerate({*keep, var})}

    def spec(scope, batch):
        return (_BATCH if batch else "") + "".join(letter[v] for v in scope)

    acc, acc_scope, acc_batch = ins[0], tuple(scopes[0]), batched[0]
    if len(ins) == 1:
        return torch.einsum(f"{spec(acc_scope, acc_batch)}->{spec(keep, acc_batch)}", acc)
    for k in range(1, len(ins)):
        batch = acc_batch or batched[k]
        if k == len(ins) - 1:
            out_scope = tuple(keep)
        else:
            out_scope = acc_scope + tuple(v for v in scopes[k] if v not in acc_scope)
        eq = f"{spec(acc_scope, acc_batch)},{spec(scopes[k], batched[k])}->{spec(out_scope, batch)}"
        acc, acc_scope, acc_batch = torch.einsum(eq, acc, ins[k]), out_scope, batch
    return acc


def _safe(total: Tensor) -> Tensor:
    """The normaliser, with 0 replaced by 1 (an impossible row stays 0, and its log -inf)."""
    return torch.where(total > 0, total, torch.ones_like(total))


def _align(t: Tensor, scope, full, batched: bool, cards) -> Tensor:
    """``t`` (over ``scope``, batch first if ``batched``) viewed over ``full`` (batch first)."""
    order = [scope.index(v) for v in full if v in scope]
    off = 1 if batched else 0
    t = t.permute(*(range(off)), *(o + off for o in order))
    shape = [t.shape[0] if batched else 1] + [cards[v] if v in scope else 1 for v in full]
    return t.reshape(shape)


def plan(scopes: Sequence[Sequence[int]], cards: Sequence[int], order: Sequence[int]) -> Plan:
    """The contraction plan that eliminates ``order`` (every variable of every scope)."""
    scopes = tuple(tuple(s) for s in scopes)
    holders: dict[int, set[int]] = {}
    for i, s in enumerate(scopes):
        for v in s:
            holders.setdefault(v, set()).add(i)
    current = dict(enumerate(scopes))
    steps = []
    next_id = len(scopes)
    for v in order:
        ids = sorted(holders.pop(v, set()))
        if not ids:
            continue
        union: list[int] = []
        for i in ids:
            union += [u for u in current[i] if u not in union]
        scope = tuple(u for u in union if u != v)
        steps.append(Step(v, tuple(ids), tuple(current[i] for i in ids), scope))
        for i in ids:
            for u in current.pop(i):
                if u != v:
                    holders[u].discard(i)
        current[next_id] = scope
        for u in scope:
            holders[u].add(next_id)
        next_id += 1
    if holders:
        raise ValueError(f"plan: variables {sorted(holders)} are not in the order")
    scalars = tuple(i for i, s in current.items() if not s and i < len(scopes))
    return Plan(scopes, tuple(cards), tuple(steps), scalars)
