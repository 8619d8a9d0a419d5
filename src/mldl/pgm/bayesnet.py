r"""Bayesian networks: the notes' directed structured model,
:math:`P(x) = \prod_i P(x_i \mid \mathrm{pa}(x_i))` over a DAG.

An unstructured table over n variables of k states needs :math:`k^n - 1` numbers; a network
needs :math:`\sum_i (k_i - 1)\prod_{j \in \mathrm{pa}(i)} k_j`
(:meth:`BayesianNetwork.num_parameters`). Exact inference is batched over evidence rows
(:mod:`mldl.pgm.inference`); parameters are fitted by maximum likelihood, with Dirichlet
(BDeu) priors, and by EM when values are missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from .. import _checks
from . import bif
from .factor import DiscreteFactor
from .inference import Plan, elimination_order, plan

__all__ = ["BayesianNetwork", "ImpossibleEvidence"]

Evidence = Mapping[str, int | str | Tensor] | Tensor | None


class ImpossibleEvidence(ValueError):
    """Evidence with probability 0 under the network: no posterior exists."""


class BayesianNetwork:
    """A discrete Bayesian network.

    Args:
        states: ``{variable: [state names]}``; its order is :attr:`variables`, the column
            order of data and evidence tensors.
        parents: ``{variable: [parent names]}`` (missing: no parents).
        cpts: ``{variable: tensor}`` of shape ``(*parent cardinalities, own cardinality)``:
            ``cpts[v][pa_1, ..., pa_m]`` is the distribution of v given its parents' states.
        tolerance: how far a CPT row may sum from 1.

    >>> import torch
    >>> bn = BayesianNetwork(
    ...     {"rain": ["no", "yes"], "wet": ["no", "yes"]},
    ...     {"wet": ["rain"]},
    ...     {"rain": torch.tensor([0.8, 0.2]), "wet": torch.tensor([[0.9, 0.1], [0.2, 0.8]])},
    ... )
    >>> bn.posterior_marginals({"wet": "yes"})["rain"]  # 0.16 / (0.08 + 0.16)
    tensor([[0.3333, 0.6667]], dtype=torch.float64)
    """

    def __init__(
        self,
        states: Mapping[str, Sequence[str]],
        parents: Mapping[str, Sequence[str]] | None = None,
        cpts: Mapping[str, Tensor] | None = None,
        *,
        name: str = "network",
        tolerance: float = 1e-6,
    ) -> None:
        fn = "BayesianNetwork"
        self.name = name
        self.variables: list[str] = list(states)
        self.states: dict[str, list[str]] = {v: list(s) for v, s in states.items()}
        for v, s in self.states.items():
            if not s or len(set(s)) != len(s):
                raise ValueError(f"{fn}: states: {v!r} needs distinct state names, got {s}")
        parents = dict(parents or {})
        unknown = [v for v in parents if v not in self.states]
        if unknown:
            raise ValueError(f"{fn}: parents: unknown variables {unknown}")
        self.parents: dict[str, list[str]] = {v: list(parents.get(v, [])) for v in self.variables}
        for v, ps in self.parents.items():
            bad = [p for p in ps if p not in self.states]
            if bad:
                raise ValueError(f"{fn}: parents: {v!r} has unknown parents {bad}")
            if len(set(ps)) != len(ps) or v in ps:
                raise ValueError(f"{fn}: parents: {v!r} lists a parent twice or itself")
        self.order = self._topological_order()
        self.cpts: dict[str, Tensor] = {}
        cpts = dict(cpts or {})
        for v in self.variables:
            if v not in cpts:
                raise ValueError(f"{fn}: cpts: no CPT for {v!r}")
            self.cpts[v] = self._checked_cpt(v, cpts[v], tolerance)
        extra = [v for v in cpts if v not in self.states]
        if extra:
            raise ValueError(f"{fn}: cpts: unknown variables {extra}")

    # ---------------------------------------------------------------------- structure

    def _topological_order(self) -> list[str]:
        indegree = {v: len(ps) for v, ps in self.parents.items()}
        children: dict[str, list[str]] = {v: [] for v in self.variables}
        for v, ps in self.parents.items():
            for p in ps:
                children[p].append(v)
        ready = [v for v in self.variables if indegree[v] == 0]
        order = []
        while ready:
            v = ready.pop(0)
            order.append(v)
            for c in children[v]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        if len(order) < len(self.variables):
            raise ValueError(
                f"BayesianNetwork: parents: the graph has a cycle through "
                f"{self._a_cycle(set(self.variables) - set(order))}"
            )
        return order

    def _a_cycle(self, nodes: set[str]) -> str:
        """One directed cycle among ``nodes``, as 'a -> b -> ... -> a'."""
        start = min(nodes)
        path, seen = [start], {start}
        while True:
            nxt = min(p for p in self.parents[path[-1]] if p in nodes)
            if nxt in seen:
                cycle = [*path[path.index(nxt) :], nxt]
                return " -> ".join(reversed(cycle))
            path.append(nxt)
            seen.add(nxt)

    def _checked_cpt(self, v: str, cpt: Tensor, tolerance: float) -> Tensor:
        fn = "BayesianNetwork"
        if not isinstance(cpt, Tensor):
            cpt = torch.as_tensor(cpt, dtype=torch.float64)
        cpt = cpt.to(torch.float64)
        shape = (*tuple(len(self.states[p]) for p in self.parents[v]), len(self.states[v]))
        if tuple(cpt.shape) != shape:
            raise ValueError(
                f"{fn}: cpts: {v!r} needs shape {shape} (parents "
                f"{self.parents[v]}, then {v}), got {tuple(cpt.shape)}"
            )
        if not bool(torch.isfinite(cpt).all()) or bool((cpt < 0).any()):
            raise ValueError(f"{fn}: cpts: {v!r} has negative or non-finite entries")
        sums = cpt.sum(-1)
        if bool(((sums - 1).abs() > tolerance).any()):
            worst = float(sums.flatten()[(sums - 1).abs().flatten().argmax()])
            raise ValueError(f"{fn}: cpts: a row of {v!r} sums to {worst:.6g}, not 1")
        return cpt

    @property
    def cardinality(self) -> dict[str, int]:
        return {v: len(s) for v, s in self.states.items()}

    def num_parameters(self) -> int:
        r"""Free parameters: :math:`\sum_i (k_i - 1)\prod_{j \in pa(i)} k_j`."""
        card = self.cardinality
        return sum(
            (card[v] - 1) * math.prod(card[p] for p in self.parents[v]) for v in self.variables
        )

    def full_table_parameters(self) -> int:
        """Free parameters of the unstructured joint table: :math:`\\prod_i k_i - 1` (the
        notes' k^n), as an exact Python integer."""
        return math.prod(self.cardinality.values()) - 1

    def __repr__(self) -> str:
        edges = sum(len(p) for p in self.parents.values())
        return (
            f"<BayesianNetwork {self.name!r}: {len(self.variables)} variables, {edges} "
            f"edges, {self.num_parameters()} parameters>"
        )

    # ------------------------------------------------------------------------ BIF I/O

    @classmethod
    def read_bif(cls, path: str | Path, *, tolerance: float = 1e-3) -> BayesianNetwork:
        """Read a BIF file (plain or gzip); see :func:`mldl.pgm.bif.read_bif`."""
        parsed = bif.read_bif(path, tolerance=tolerance)
        return cls(
            parsed.states, parsed.parents, parsed.cpts, name=parsed.name, tolerance=tolerance
        )

    def write_bif(self, path: str | Path | None = None) -> str:
        """The network as BIF text (written to ``path`` when given, gzip for ``.gz``)."""
        return bif.write_bif(bif.ParsedBIF(self.name, self.states, self.parents, self.cpts), path)

    def factors(self) -> list[DiscreteFactor]:
        """The CPTs as factors over (parents..., variable)."""
        return [
            DiscreteFactor(
                [*self.parents[v], v],
                self.cpts[v],
                {u: self.states[u] for u in [*self.parents[v], v]},
            )
            for v in self.variables
        ]

    # ----------------------------------------------------------------------- sampling

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` joint samples by ancestral sampling: an (n, len(variables)) LongTensor of
        state indices, columns in :attr:`variables` order."""
        n = _checks.integer(n, "n", "BayesianNetwork.sample", low=0)
        col = {v: i for i, v in enumerate(self.variables)}
        out = torch.empty(n, len(self.variables), dtype=torch.long)
        for v in self.order:
            cpt = self.cpts[v]
            probs = (
                cpt[tuple(out[:, col[p]] for p in self.parents[v])]
                if self.parents[v]
                else (cpt.expand(n, -1))
            )
            out[:, col[v]] = torch.multinomial(probs, 1, generator=generator).squeeze(1) if n else 0
        return out

    # ---------------------------------------------------------------------- inference

    @cached_property
    def _index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.variables)}

    def _scopes(self) -> list[tuple[int, ...]]:
        ix = self._index
        cpt_scopes = [tuple(ix[u] for u in [*self.parents[v], v]) for v in self.variables]
        return cpt_scopes + [(i,) for i in range(len(self.variables))]

    def plan(self, heuristic: str = "min_fill") -> Plan:
        """The contraction plan (a junction tree's collect pass) for the CPTs and one
        evidence indicator per variable, cached per heuristic."""
        cache = self.__dict__.setdefault("_plans", {})
        if heuristic not in cache:
            scopes = self._scopes()
            cards = [len(self.states[v]) for v in self.variables]
            cache[heuristic] = plan(scopes, cards, elimination_order(scopes, cards, heuristic))
        return cache[heuristic]

    def evidence_tensor(self, evidence: Evidence) -> Tensor:
        """Evidence as a (B, n) LongTensor of state indices, -1 where unobserved.

        Accepts a dict ``{name: state name or index}`` (one row), a (B, n) LongTensor with
        columns in :attr:`variables` order, or a dict ``{name: (B,) LongTensor}`` with -1
        for unobserved entries."""
        fn = "BayesianNetwork"
        n = len(self.variables)
        if evidence is None:
            return torch.full((1, n), -1, dtype=torch.long)
        if isinstance(evidence, Tensor):
            if evidence.dim() == 1:
                evidence = evidence.unsqueeze(0)
            if evidence.dim() != 2 or evidence.shape[1] != n:
                raise ValueError(
                    f"{fn}: evidence: expected a (B, {n}) tensor (columns in "
                    f"bn.variables order), got shape {tuple(evidence.shape)}"
                )
            if evidence.is_floating_point() or evidence.dtype == torch.bool:
                raise TypeError(
                    f"{fn}: evidence: expected integer state indices, got {evidence.dtype}"
                )
            out = evidence.long()
        elif isinstance(evidence, Mapping):
            unknown = [v for v in evidence if v not in self.states]
            if unknown:
                raise ValueError(
                    f"{fn}: evidence: unknown variables {unknown} (variables: "
                    f"{self.variables[:8]}{'...' if n > 8 else ''})"
                )
            batched = [v for v, s in evidence.items() if isinstance(s, Tensor) and s.dim() > 0]
            rows = len(evidence[batched[0]]) if batched else 1
            out = torch.full((rows, n), -1, dtype=torch.long)
            for v, s in evidence.items():
                out[:, self._index[v]] = self._state_index(v, s, rows)
        else:
            raise TypeError(
                f"{fn}: evidence: expected a dict or a LongTensor, got {type(evidence).__name__}"
            )
        cards = torch.tensor([len(self.states[v]) for v in self.variables])
        bad = (out < -1) | (out >= cards)
        if bool(bad.any()):
            r, c = bad.nonzero()[0].tolist()
            raise ValueError(
                f"{fn}: evidence: row {r}, {self.variables[c]!r}: state index "
                f"{int(out[r, c])} outside [0, {int(cards[c]) - 1}] (or -1)"
            )
        return out

    def _state_index(self, v: str, s, rows: int) -> Tensor:
        states = self.states[v]
        if isinstance(s, str):
            if s not in states:
                raise ValueError(
                    f"BayesianNetwork: evidence: {v!r} has no state {s!r} (states: {states})"
                )
            return torch.full((rows,), states.index(s), dtype=torch.long)
        if isinstance(s, Tensor):
            if s.is_floating_point():
                raise TypeError(
                    f"BayesianNetwork: evidence: {v!r}: expected state indices, got {s.dtype}"
                )
            if s.dim() == 0:
                return s.long().expand(rows)
            if len(s) != rows:
                raise ValueError(
                    f"BayesianNetwork: evidence: {v!r} has {len(s)} rows, expected {rows}"
                )
            return s.long()
        return torch.full(
            (rows,), _checks.integer(s, v, "BayesianNetwork: evidence"), dtype=torch.long
        )

    def _indicators(self, rows: Tensor) -> list[Tensor]:
        """λ_v per variable: (B, k_v), one-hot where observed, ones where not."""
        out = []
        for i, v in enumerate(self.variables):
            k, col = len(self.states[v]), rows[:, i]
            lam = torch.ones(len(rows), k, dtype=torch.float64)
            seen = col >= 0
            lam[seen] = torch.nn.functional.one_hot(col[seen], k).to(torch.float64)
            out.append(lam)
        return out

    def _log_z(
        self, lams: list[Tensor], cpts: list[Tensor] | None = None, heuristic: str = "min_fill"
    ) -> Tensor:
        p = self.plan(heuristic)
        cpts = cpts if cpts is not None else [self.cpts[v] for v in self.variables]
        tensors = [*cpts, *lams]
        batched = [False] * len(cpts) + [True] * len(lams)
        return p.log_partition(tensors, batched)

    def log_probability_of_evidence(self, evidence: Evidence = None) -> Tensor:
        """:math:`\\log P(e)` per evidence row, shape (B,) (``-inf`` for impossible rows)."""
        with torch.no_grad():
            return self._log_z(self._indicators(self.evidence_tensor(evidence)))

    def probability_of_evidence(self, evidence: Evidence = None) -> Tensor:
        """:math:`P(e)` per evidence row, shape (B,)."""
        return self.log_probability_of_evidence(evidence).exp()

    def log_prob(self, data: Tensor) -> Tensor:
        """Log-likelihood of each row of ``data`` ((B, n) state indices, -1 = missing, which
        is summed out): the log-probability of what each row observes."""
        return self.log_probability_of_evidence(data)

    def posterior_marginals(
        self, evidence: Evidence = None, *, heuristic: str = "min_fill"
    ) -> dict[str, Tensor]:
        """Every variable's posterior given each evidence row: ``{name: (B, k)}``, states in
        :attr:`states` order (observed variables: one-hot).

        One contraction and its backward per batch (the junction tree calibrated once for
        all rows). Rows whose evidence has probability 0 raise :class:`ImpossibleEvidence`
        naming them."""
        rows = self.evidence_tensor(evidence)
        lams = [lam.requires_grad_() for lam in self._indicators(rows)]
        with torch.enable_grad():
            log_z = self._log_z(lams, heuristic=heuristic)
            self._check_possible(log_z, rows)
            grads = torch.autograd.grad(log_z.sum(), lams)
        return {
            v: (lam.detach() * g) for v, lam, g in zip(self.variables, lams, grads, strict=True)
        }

    def _check_possible(self, log_z: Tensor, rows: Tensor) -> None:
        impossible = torch.isneginf(log_z).nonzero().flatten()
        if impossible.numel():
            r = int(impossible[0])
            seen = {
                self.variables[i]: self.states[self.variables[i]][int(s)]
                for i, s in enumerate(rows[r])
                if s >= 0
            }
            raise ImpossibleEvidence(
                f"BayesianNetwork: evidence: {impossible.numel()} row(s) have probability 0 "
                f"under the network (rows {impossible[:10].tolist()}); row {r}: {seen}"
            )

    def most_probable_explanation(
        self, evidence: Evidence = None, *, heuristic: str = "min_fill"
    ) -> tuple[Tensor, Tensor]:
        """The most probable joint state of all variables given each evidence row (MAP over
        every unobserved variable): a (B, n) LongTensor and its log joint probability
        :math:`\\log P(x^*, e)`, per row."""
        rows = self.evidence_tensor(evidence)
        lams = self._indicators(rows)
        tensors = [*(self.cpts[v] for v in self.variables), *lams]
        batched = [False] * len(self.variables) + [True] * len(lams)
        with torch.no_grad():
            assignment, log_value = self.plan(heuristic).max_assignment(tensors, batched, len(rows))
        self._check_possible(log_value, rows)
        return assignment, log_value

    def query(
        self, variables: Sequence[str], evidence: Mapping[str, int | str] | None = None
    ) -> DiscreteFactor:
        """The joint posterior of ``variables`` given one evidence dict, by variable
        elimination on the relevant part of the network only (ancestors of the query and the
        evidence; the others sum to 1)."""
        fn = "BayesianNetwork.query"
        variables = list(variables)
        unknown = [v for v in variables if v not in self.states]
        if unknown:
            raise ValueError(f"{fn}: variables: unknown {unknown}")
        rows = self.evidence_tensor(dict(evidence or {}))
        if rows.shape[0] != 1:
            # the probe's gradient would add the rows' posteriors into one table
            raise ValueError(
                f"{fn}: evidence: expected one evidence row (a dict of states), got "
                f"{rows.shape[0]} rows; use posterior_marginals for a batch"
            )
        keep = self._ancestors(set(variables) | {v for v in (evidence or {})})
        ix = {v: i for i, v in enumerate(self.variables)}
        order_vars = [v for v in self.variables if v in keep]
        local = {v: j for j, v in enumerate(order_vars)}
        scopes = [tuple(local[u] for u in [*self.parents[v], v]) for v in order_vars]
        cards = [len(self.states[v]) for v in order_vars]
        lams = self._indicators(rows)
        scopes += [(local[v],) for v in order_vars]
        tensors = [self.cpts[v] for v in order_vars] + [lams[ix[v]] for v in order_vars]
        batched = [False] * len(order_vars) + [True] * len(order_vars)
        q = [local[v] for v in variables]
        # A probe factor over the query (all ones): the gradient of log Z with respect to it
        # is the joint posterior of the query. Everything else is eliminated first.
        scopes_q = [*scopes, tuple(q)]
        rest = [local[v] for v in order_vars if v not in variables]
        order = elimination_order(scopes_q, cards, "min_fill", rest) + q
        probe = torch.ones(1, *(cards[i] for i in q), dtype=torch.float64, requires_grad=True)
        p = plan(scopes_q, cards, order)
        with torch.enable_grad():
            log_z = p.log_partition([*tensors, probe], [*batched, True])
            self._check_possible(log_z, rows)
            (grad,) = torch.autograd.grad(log_z.sum(), probe)
        values = (probe.detach() * grad)[0]
        return DiscreteFactor(variables, values, {v: self.states[v] for v in variables})

    def _ancestors(self, nodes: set[str]) -> set[str]:
        out, todo = set(), list(nodes)
        while todo:
            v = todo.pop()
            if v not in out:
                out.add(v)
                todo.extend(self.parents[v])
        return out

    # -------------------------------------------------------------------------- fitting

    def counts(self, data: Tensor) -> dict[str, Tensor]:
        """Per variable, how often each (parent states, state) occurs in complete ``data``
        ((B, n) state indices): tensors shaped like the CPTs."""
        data = self._data(data, "BayesianNetwork.counts")
        out = {}
        for v in self.variables:
            cols = [*self.parents[v], v]
            shape = [len(self.states[u]) for u in cols]
            flat = torch.zeros(len(data), dtype=torch.long)
            for u, k in zip(cols, shape, strict=True):
                flat = flat * k + data[:, self._index[u]]
            out[v] = torch.bincount(flat, minlength=math.prod(shape)).reshape(shape).double()
        return out

    def _data(self, data: Tensor, fn: str, *, missing: bool = False) -> Tensor:
        _checks.tensor(data, "data", fn)
        if data.dim() != 2 or data.shape[1] != len(self.variables):
            raise ValueError(
                f"{fn}: data: expected shape (B, {len(self.variables)}) (columns "
                f"in bn.variables order), got {tuple(data.shape)}"
            )
        if data.is_floating_point() or data.dtype == torch.bool:
            raise TypeError(f"{fn}: data: expected integer state indices, got {data.dtype}")
        data = data.long()
        cards = torch.tensor([len(self.states[v]) for v in self.variables])
        low = -1 if missing else 0
        bad = (data < low) | (data >= cards)
        if bool(bad.any()):
            r, c = bad.nonzero()[0].tolist()
            allowed = " or -1 for missing" if missing else ""
            raise ValueError(
                f"{fn}: data: row {r}, {self.variables[c]!r}: {int(data[r, c])} is "
                f"not a state index in [0, {int(cards[c]) - 1}]{allowed}"
            )
        return data

    def _pseudo_counts(self, prior, equivalent_sample_size: float) -> dict[str, Tensor | float]:
        """Dirichlet pseudo-counts per CPT cell: none, BDeu (ess / (q_i r_i)), a number for
        every cell, or a dict of tensors shaped like the CPTs."""
        if prior is None:
            return dict.fromkeys(self.variables, 0.0)
        if prior == "bdeu":
            ess = _checks.number(
                equivalent_sample_size,
                "equivalent_sample_size",
                "BayesianNetwork.fit",
                low=0.0,
                low_open=True,
            )
            return {v: ess / self.cpts[v].numel() for v in self.variables}
        if isinstance(prior, Mapping):
            out = {}
            for v in self.variables:
                a = torch.as_tensor(prior.get(v, 0.0), dtype=torch.float64)
                if a.dim() and tuple(a.shape) != tuple(self.cpts[v].shape):
                    raise ValueError(
                        f"BayesianNetwork.fit: prior: {v!r} needs shape "
                        f"{tuple(self.cpts[v].shape)}, got {tuple(a.shape)}"
                    )
                if bool((a < 0).any()):
                    raise ValueError(f"BayesianNetwork.fit: prior: {v!r} has negative counts")
                out[v] = a
            return out
        a = _checks.number(prior, "prior", "BayesianNetwork.fit", low=0.0)
        return dict.fromkeys(self.variables, a)

    def _set_from_counts(self, counts: dict[str, Tensor], pseudo: dict) -> None:
        for v in self.variables:
            c = counts[v] + pseudo[v]
            total = c.sum(-1, keepdim=True)
            k = c.shape[-1]
            # a parent configuration never seen (and no prior): uniform, not 0/0
            self.cpts[v] = torch.where(
                total > 0, c / total.clamp_min(1e-300), torch.full_like(c, 1.0 / k)
            )

    def fit(
        self,
        data: Tensor,
        prior: str | float | Mapping[str, Tensor] | None = None,
        *,
        equivalent_sample_size: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-6,
    ) -> BayesianNetwork:
        """Fit the CPTs to ``data`` ((B, n) state indices; -1 = missing). Returns self.

        ``prior=None``: maximum likelihood (normalised counts; a never-seen parent
        configuration gets the uniform distribution). ``'bdeu'``: BDeu Dirichlet prior,
        ``equivalent_sample_size / (q_i r_i)`` pseudo-counts per cell. A number: that many
        pseudo-counts per cell. A dict: per-variable pseudo-count tensors. With missing
        values, EM from the current CPTs (:meth:`fit_em`)."""
        data = self._data(data, "BayesianNetwork.fit", missing=True)
        pseudo = self._pseudo_counts(prior, equivalent_sample_size)
        if bool((data < 0).any()):
            self.fit_em(data, pseudo, max_iter=max_iter, tol=tol)
        else:
            self._set_from_counts(self.counts(data), pseudo)
        return self

    def expected_counts(self, data: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Expected counts of each (parent states, state) over rows with missing values,
        under the current CPTs, and the data's total log-likelihood.

        They are :math:`\\theta \\odot \\nabla_\\theta \\sum_r \\log P(e_r)`: each CPT entry
        appears once in every term of the joint, so the gradient of the log-likelihood with
        respect to it, times it, counts its expected occurrences."""
        data = self._data(data, "BayesianNetwork.expected_counts", missing=True)
        thetas = [self.cpts[v].clone().requires_grad_() for v in self.variables]
        with torch.enable_grad():
            log_z = self._log_z(self._indicators(data), cpts=thetas)
            self._check_possible(log_z, data)
            grads = torch.autograd.grad(log_z.sum(), thetas)
        counts = {v: t.detach() * g for v, t, g in zip(self.variables, thetas, grads, strict=True)}
        return counts, log_z.detach().sum()

    def fit_em(
        self, data: Tensor, pseudo: dict | None = None, *, max_iter: int = 100, tol: float = 1e-6
    ) -> list[float]:
        """Expectation-maximisation from the current CPTs: repeat (expected counts, then
        normalised counts plus ``pseudo``) until the log-likelihood gains less than ``tol``
        per row. Returns the data's log-likelihood under the starting CPTs, then after each
        iteration (non-decreasing without ``pseudo``); the last entry is the fitted CPTs'."""
        pseudo = pseudo if pseudo is not None else dict.fromkeys(self.variables, 0.0)
        max_iter = _checks.integer(max_iter, "max_iter", "BayesianNetwork.fit_em", low=1)
        counts, ll = self.expected_counts(data)
        history: list[float] = [float(ll)]
        for _ in range(max_iter):
            self._set_from_counts(counts, pseudo)
            # this E-step's log-likelihood is the updated CPTs' (and its counts the next M's)
            counts, ll = self.expected_counts(data)
            history.append(float(ll))
            if history[-1] - history[-2] < tol * len(data):
                break
        return history
