r"""Markov random fields: the notes' undirected structured model.

.. math::

    P(x) = \frac{1}{Z} \prod_f \phi_f(x_f), \qquad Z = \sum_x \prod_f \phi_f(x_f),
    \qquad E(x) = -\sum_f \log \phi_f(x_f), \quad P(x) = \frac{e^{-E(x)}}{Z}.

Each factor :math:`\phi_f \ge 0` is a table over a few variables (its scope), given by its
*log-potential* :math:`\log \phi_f` (``-inf`` marks an impossible configuration). Unlike a
Bayesian network the factors need not be normalised and the graph may have cycles: the
notes' "Markov network / Markov random field ... can be cyclic". A log-linear model with
pairwise factors over binary variables is the notes' "Boltzmann machine without latent
variables" (:meth:`MarkovRandomField.fully_visible_boltzmann_machine`); the Ising model is
the same thing on spins (:meth:`MarkovRandomField.ising_2d`).

Two variables are neighbours when some factor contains both; a variable is independent of
all others given its neighbours (its Markov blanket), and in general
:math:`A \perp B \mid C` whenever C separates A from B in this graph
(:meth:`MarkovRandomField.separated`). The 4-cycle a–b–c–d–a gives
:math:`a \perp c \mid \{b, d\}` and :math:`b \perp d \mid \{a, c\}`, a pair no DAG over the
same four variables encodes without adding an edge.

Inference:

* **Exact** (:meth:`~MarkovRandomField.log_partition`, :meth:`~MarkovRandomField.marginals`,
  :meth:`~MarkovRandomField.most_probable_explanation`): contraction along a greedy
  elimination order (:mod:`mldl.pgm.inference`); its cost is exponential in the induced
  width (:meth:`~MarkovRandomField.treewidth`), never in the number of variables: an L×L
  grid costs about :math:`L^2 2^{L+1}`, not :math:`2^{L^2}`. The full joint is never built.
* **Gibbs sampling** (:meth:`~MarkovRandomField.gibbs`):
  :math:`P(x_i \mid x_{-i}) \propto \prod_{f \ni i} \phi_f(x_f)`, gathered on the fly from
  the factors that contain :math:`x_i`.
* **Loopy belief propagation** (:meth:`~MarkovRandomField.loopy_belief_propagation`):
  sum-product on the factor graph, exact on trees, approximate with cycles.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .. import _checks
from .bayesnet import ImpossibleEvidence
from .factor import DiscreteFactor
from .inference import Plan, elimination_order
from .inference import plan as make_plan

__all__ = [
    "ISING_2D_CRITICAL_TEMPERATURE",
    "BeliefPropagationResult",
    "IntractableInference",
    "MarkovRandomField",
    "ising_chain_log_partition",
    "magnetization",
    "onsager_magnetization",
]

#: Onsager's critical temperature of the square-lattice Ising model (J = k_B = 1):
#: :math:`T_c = 2 / \ln(1 + \sqrt 2) \approx 2.269`.
ISING_2D_CRITICAL_TEMPERATURE = 2.0 / math.log(1.0 + math.sqrt(2.0))

# Loopy BP works in log space with -inf replaced by this floor, so that "all messages but
# one" can be computed by subtraction (exp(-1e5) is exactly 0 in float64 and float32).
_FLOOR = -1e5
# Rows of assignments gathered at once by energy(): bounds the index tensors' memory.
_GATHER_BUDGET = 1 << 22

Evidence = Mapping[str, int | str | Tensor] | Tensor | None
FactorSpec = DiscreteFactor | tuple[Sequence[str], Tensor]
# an elimination heuristic ('min_fill', 'min_weight'), an explicit order of variable names,
# or None: the field's own order when it has one, else 'min_fill'
Heuristic = str | Sequence[str] | None


class IntractableInference(ValueError):
    """Exact contraction would need an intermediate table larger than ``max_states``."""


@dataclass(frozen=True)
class BeliefPropagationResult:
    """What :meth:`MarkovRandomField.loopy_belief_propagation` returns.

    Attributes:
        marginals: ``{name: (B, k)}`` beliefs, one row per evidence row.
        log_partition: (B,) Bethe approximation of :math:`\\log Z(e)` (exact on trees).
        converged: whether the largest message change fell below ``tol``.
        iterations: parallel message updates done.
        max_change: the largest change of a message (in probability) at the last update.
    """

    marginals: dict[str, Tensor]
    log_partition: Tensor
    converged: bool
    iterations: int
    max_change: float


@dataclass(frozen=True)
class _Blanket:
    """Index tables that gather :math:`\\sum_{f \\ni i} \\log\\phi_f(x_i = s, x_{-i})` for a
    set of S variables at once from the flat bank of all log-potentials (F: most factors
    of one variable, A: largest scope, K: most states)."""

    vars: Tensor  # (S,)
    cols: Tensor  # (A, S, F) columns of the other variables (n: a constant-0 column)
    strides: Tensor  # (A, S, F) their strides in the flattened factor (0 for padding)
    offsets: Tensor  # (S, F) where each factor starts in the bank (padding: a 0 entry)
    own: Tensor  # (S, F) the variable's own stride in each factor
    states: Tensor  # (S, K) state s, clamped to k_i - 1 (padding states reuse the last)
    pad: Tensor  # (S, K) 0 for real states, -inf for padding


class MarkovRandomField:
    r"""A discrete Markov random field :math:`P(x) = \frac{1}{Z}\prod_f \phi_f(x_f)`.

    Args:
        states: ``{variable: [state names]}`` or ``{variable: cardinality}``; its order is
            :attr:`variables`, the column order of assignment and evidence tensors.
        factors: a list of ``(variables, log_potential)`` pairs, ``log_potential`` of shape
            ``(k_1, ..., k_m)`` in the order of ``variables`` (finite values or ``-inf`` for
            an impossible configuration), or :class:`DiscreteFactor` objects (linear ones
            are converted with ``log``). Scopes may repeat, overlap and form cycles;
            variables in no factor are uniform and independent of the rest.
        name: a label for ``repr``.
        max_states: the largest intermediate table (states per evidence row) exact
            inference may build; beyond it :class:`IntractableInference` is raised before any
            memory is spent.
        dtype: floating dtype of all computations (default float64).
        device: where the potentials live (default: that of the first factor, else CPU).
        order: an elimination order (every variable name once) used by exact inference
            by default instead of the greedy ``'min_fill'`` (see :meth:`plan`).

    The model is immutable after construction (plans and index tables are cached).
    Log-potentials that require grad stay in the autograd graph: :meth:`log_partition`
    and :meth:`energy` are differentiable with respect to them (the gradient of
    :math:`\log Z` is the vector of factor marginals, the "negative phase" of learning).

    >>> import torch
    >>> # the notes' cyclic model: a 4-cycle a-b-c-d-a with attractive pairwise factors
    >>> pair = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> mrf = MarkovRandomField.from_factors(
    ...     [(e, pair) for e in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]]
    ... )
    >>> mrf.separated("a", "c", given=["b", "d"]), mrf.separated("a", "c", given=["b"])
    (True, False)
    >>> round(float(mrf.log_partition()), 6)  # log(2 e^4 + 12 e^2 + 2): 0, 2 or 4 cuts
    5.297642
    >>> mrf.marginals({"a": 1})["c"]
    tensor([[0.2958, 0.7042]], dtype=torch.float64)
    """

    def __init__(
        self,
        states: Mapping[str, Sequence[str] | int],
        factors: Sequence[FactorSpec] = (),
        *,
        name: str = "mrf",
        max_states: int = 2**24,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        order: Sequence[str] | None = None,
    ) -> None:
        fn = "MarkovRandomField"
        self.name = name
        self.states = _parse_states(states, fn)
        self.variables: list[str] = list(self.states)
        self.max_states = _checks.integer(max_states, "max_states", fn, low=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"{fn}: dtype: expected a floating torch.dtype, got {dtype!r}")
        self.dtype = dtype
        if isinstance(factors, (DiscreteFactor, Mapping)) or not isinstance(factors, Sequence):
            raise TypeError(
                f"{fn}: factors: expected a list of (variables, log-potential) pairs or "
                f"DiscreteFactors, got {type(factors).__name__}"
            )
        parsed = [self._parse_factor(j, f) for j, f in enumerate(factors)]
        if device is None:
            device = next((v.device for _, v in parsed), torch.device("cpu"))
        self.device = torch.device(device)
        self.factors: list[DiscreteFactor] = [
            DiscreteFactor(
                scope,
                values.to(device=self.device, dtype=dtype),
                {v: self.states[v] for v in scope},
                log=True,
            )
            for scope, values in parsed
        ]
        self.order: tuple[int, ...] | None = (
            None if order is None else self._parse_order(order, f"{fn}: order")
        )

    def _parse_factor(self, j: int, f: object) -> tuple[tuple[str, ...], Tensor]:
        where = f"MarkovRandomField: factors[{j}]"
        if isinstance(f, DiscreteFactor):
            scope, values = f.variables, f.values
            if not f.log:
                if not bool(((values >= 0) | values.isnan()).all()):
                    raise ValueError(f"{where}: a linear DiscreteFactor has negative potentials")
                if not values.is_floating_point():
                    values = values.to(torch.float64)
                values = torch.log(values)
        elif isinstance(f, (tuple, list)) and len(f) == 2:
            scope, values = f
        else:
            raise TypeError(
                f"{where}: expected a (variables, log-potential) pair or a DiscreteFactor, got "
                f"{type(f).__name__}"
            )
        if isinstance(scope, str) or not isinstance(scope, Sequence):
            raise TypeError(
                f"{where}: variables: expected a sequence of names (e.g. ('a',)), got {scope!r}"
            )
        scope = tuple(scope)
        unknown = [v for v in scope if v not in self.states]
        if unknown:
            shown = self.variables[:8]
            raise ValueError(
                f"{where}: unknown variables {unknown} (variables: {shown}"
                f"{'...' if len(self.variables) > 8 else ''})"
            )
        if len(set(scope)) != len(scope):
            raise ValueError(f"{where}: a variable repeats in the scope {scope}")
        if not isinstance(values, Tensor):
            try:
                values = torch.as_tensor(values, dtype=self.dtype)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"{where}: expected a tensor of log-potentials: {err}") from None
        if values.dtype == torch.bool or values.is_complex():
            raise TypeError(f"{where}: expected real log-potentials, got {values.dtype}")
        shape = tuple(len(self.states[v]) for v in scope)
        if tuple(values.shape) != shape:
            raise ValueError(
                f"{where}: expected log-potentials of shape {shape} (the cardinalities of "
                f"{list(scope)}), got {tuple(values.shape)}"
            )
        if values.is_floating_point():
            v = values.detach()
            for bad, what in ((torch.isnan(v), "NaN"), (torch.isposinf(v), "+inf")):
                if bool(bad.any()):
                    at = tuple(bad.nonzero()[0].tolist())
                    raise ValueError(
                        f"{where}: expected finite log-potentials (or -inf for an impossible "
                        f"configuration), got {what} at index {at}"
                    )
        return scope, values

    @classmethod
    def from_factors(
        cls,
        factors: Sequence[FactorSpec],
        states: Mapping[str, Sequence[str] | int] | None = None,
        **kwargs,
    ) -> MarkovRandomField:
        """A field whose variables are those of ``factors`` (in order of appearance), with
        cardinalities read from the factors' shapes and state names from DiscreteFactors.

        ``states`` names states or adds variables in no factor (these come last). Keyword
        arguments go to the constructor.

        >>> import torch
        >>> mrf = MarkovRandomField.from_factors([(("a", "b"), torch.zeros(2, 3))])
        >>> mrf.states
        {'a': ['0', '1'], 'b': ['0', '1', '2']}
        """
        fn = "MarkovRandomField.from_factors"
        given = _parse_states(states, fn, allow_empty=True) if states is not None else {}
        found: dict[str, list[str]] = {}
        for j, f in enumerate(factors):
            if isinstance(f, DiscreteFactor):
                items = [(v, f.state_names[v]) for v in f.variables]
            elif isinstance(f, (tuple, list)) and len(f) == 2 and isinstance(f[1], Tensor):
                scope = f[0]
                if isinstance(scope, str) or not isinstance(scope, Sequence):
                    raise TypeError(
                        f"{fn}: factors[{j}]: variables: expected a sequence of names, "
                        f"got {scope!r}"
                    )
                if len(scope) != f[1].dim():
                    raise ValueError(
                        f"{fn}: factors[{j}]: {len(scope)} variables but a tensor of shape "
                        f"{tuple(f[1].shape)}"
                    )
                items = [
                    (v, [str(i) for i in range(k)]) for v, k in zip(scope, f[1].shape, strict=True)
                ]
            else:
                raise TypeError(
                    f"{fn}: factors[{j}]: expected a (variables, tensor) pair or a "
                    f"DiscreteFactor, got {type(f).__name__}"
                )
            for v, names in items:
                names = given.get(v, names)
                if v in found and len(found[v]) != len(names):
                    raise ValueError(
                        f"{fn}: factors[{j}]: {v!r} has {len(names)} states here and "
                        f"{len(found[v])} in an earlier factor"
                    )
                found.setdefault(v, list(names))
        for v, names in given.items():
            found.setdefault(v, names)
        return cls(found, factors, **kwargs)

    # ---------------------------------------------------------------------- structure

    @property
    def cardinality(self) -> dict[str, int]:
        return {v: len(s) for v, s in self.states.items()}

    @cached_property
    def _index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.variables)}

    @cached_property
    def _cards(self) -> list[int]:
        return [len(self.states[v]) for v in self.variables]

    @cached_property
    def _scopes(self) -> list[tuple[int, ...]]:
        return [tuple(self._index[v] for v in f.variables) for f in self.factors]

    @cached_property
    def _adjacency(self) -> list[set[int]]:
        adj: list[set[int]] = [set() for _ in self.variables]
        for scope in self._scopes:
            for a in scope:
                adj[a].update(b for b in scope if b != a)
        return adj

    def neighbors(self, variable: str) -> list[str]:
        """The Markov blanket of ``variable``: every variable sharing a factor with it
        (in :attr:`variables` order). Given these, it is independent of all the others."""
        i = self._variable(variable, "MarkovRandomField.neighbors")
        return [self.variables[j] for j in sorted(self._adjacency[i])]

    def edges(self) -> list[tuple[str, str]]:
        """The undirected graph: pairs of variables that share a factor (each pair once,
        both in :attr:`variables` order)."""
        return [
            (self.variables[a], self.variables[b])
            for a in range(len(self.variables))
            for b in sorted(self._adjacency[a])
            if a < b
        ]

    def separated(
        self, a: str | Sequence[str], b: str | Sequence[str], given: Sequence[str] = ()
    ) -> bool:
        r"""Whether ``given`` separates ``a`` from ``b`` in the graph (every path between
        them passes through ``given``), which implies :math:`A \perp B \mid C` under every
        choice of the potentials (the global Markov property)."""
        fn = "MarkovRandomField.separated"
        sa, sb, sc = (
            {self._variable(v, fn) for v in ([x] if isinstance(x, str) else x)}
            for x in (a, b, given)
        )
        if (sa | sb) & sc:
            raise ValueError(f"{fn}: a and b must not overlap given")
        seen, todo = set(sa), list(sa)
        while todo:
            for u in self._adjacency[todo.pop()]:
                if u not in seen and u not in sc:
                    seen.add(u)
                    todo.append(u)
        return not (seen & sb)

    def _variable(self, v: object, fn: str) -> int:
        if v not in self._index:
            raise ValueError(f"{fn}: unknown variable {v!r}")
        return self._index[v]

    def num_parameters(self) -> int:
        """Entries of all log-potential tables, :math:`\\sum_f \\prod_{i \\in f} k_i` (an
        over-count of the free parameters: shifting a table changes only Z)."""
        return sum(f.values.numel() for f in self.factors)

    def full_table_parameters(self) -> int:
        """Free parameters of the unstructured joint table, :math:`\\prod_i k_i - 1` (the
        notes' k^n), as an exact Python integer."""
        return math.prod(self._cards) - 1

    def __repr__(self) -> str:
        return (
            f"<MarkovRandomField {self.name!r}: {len(self.variables)} variables, "
            f"{len(self.factors)} factors, {len(self.edges())} edges>"
        )

    # ---------------------------------------------------------------- exact inference

    def plan(self, heuristic: Heuristic = None) -> Plan:
        """The contraction plan for the factors and one indicator per variable, cached.

        ``heuristic``: ``'min_fill'`` or ``'min_weight'`` (greedy orders), an explicit
        elimination order (every variable name once), or None: the field's ``order`` when
        it was given one (the lattice constructors give the row-major order, induced
        width L on an L×L grid, which the greedy heuristics miss for larger L), else
        ``'min_fill'``. ``plan().width`` is the largest intermediate table (states per
        evidence row): the cost of exact inference."""
        key = self._plan_key(heuristic)
        cache = self.__dict__.setdefault("_plans", {})
        if key not in cache:
            scopes = [*self._scopes, *((i,) for i in range(len(self.variables)))]
            if isinstance(key, str):
                order = elimination_order(scopes, self._cards, key)
            else:
                order = list(key)
            cache[key] = make_plan(scopes, self._cards, order)
        return cache[key]

    def _plan_key(self, heuristic: Heuristic) -> str | tuple[int, ...]:
        if heuristic is None:
            return self.order if self.order is not None else "min_fill"
        if isinstance(heuristic, str):
            _checks.one_of(
                heuristic, ("min_fill", "min_weight"), "heuristic", "MarkovRandomField.plan"
            )
            return heuristic
        return self._parse_order(heuristic, "MarkovRandomField.plan: heuristic")

    def _parse_order(self, order: object, where: str) -> tuple[int, ...]:
        if isinstance(order, str) or not isinstance(order, Sequence):
            raise TypeError(f"{where}: expected a sequence of variable names, got {order!r}")
        unknown = [v for v in order if v not in self._index]
        if unknown:
            raise ValueError(f"{where}: unknown variables {unknown[:8]}")
        if len(set(order)) != len(order) or len(order) != len(self.variables):
            missing = [v for v in self.variables if v not in set(order)]
            raise ValueError(
                f"{where}: expected every variable exactly once, got {len(order)} names "
                f"(missing: {missing[:8]})"
            )
        return tuple(self._index[v] for v in order)

    def treewidth(self, heuristic: Heuristic = None) -> int:
        """The induced width of the elimination order (see :meth:`plan`): the largest
        clique minus one, in variables; an upper bound on the treewidth (an L×L grid in
        row-major order gives L)."""
        return max((len(s.scope) for s in self.plan(heuristic).steps), default=0)

    def _checked_plan(self, heuristic: Heuristic, fn: str) -> Plan:
        p = self.plan(heuristic)
        if p.width > self.max_states:
            raise IntractableInference(
                f"{fn}: exact inference needs a table of {p.width} states (induced width "
                f"{self.treewidth(heuristic)}), over max_states="
                f"{self.max_states}; raise max_states if memory allows, or use gibbs / "
                f"loopy_belief_propagation"
            )
        return p

    def _linear(self, support: bool = False) -> tuple[list[Tensor], Tensor]:
        """The potentials in linear space, each scaled to a maximum of 1, and the sum of
        the log-scales removed: :math:`\\phi_f = e^{m_f}\\,\\tilde\\phi_f`,
        :math:`\\log Z = \\sum_f m_f + \\log \\tilde Z`. ``support``: 1 where possible."""
        shift = torch.zeros((), dtype=self.dtype, device=self.device)
        out = []
        for f in self.factors:
            t = f.values
            if support:
                out.append((~torch.isneginf(t.detach())).to(self.dtype))
                continue
            m = t.detach().max()
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
            out.append(torch.exp(t - m))
            shift = shift + m
        return out, shift

    def _log_z(self, lams: list[Tensor], heuristic: Heuristic, fn: str, support: bool = False):
        p = self._checked_plan(heuristic, fn)
        tensors, shift = self._linear(support)
        if all(lam.shape[0] == 1 for lam in lams):
            # one row: no batch axis at all (the contraction runs several times faster)
            out = p.log_partition(
                [*tensors, *(lam[0] for lam in lams)], [False] * (len(tensors) + len(lams))
            )
            return out.reshape(1) + shift
        batched = [False] * len(tensors) + [True] * len(lams)
        return p.log_partition([*tensors, *lams], batched) + shift

    def _checked_log_z(self, lams: list[Tensor], heuristic: Heuristic, fn: str) -> Tensor:
        """:math:`\\log Z(\\lambda)` per row; raises if Z underflowed to 0 although some
        configuration is possible (conflicting factors whose log-potentials span more than
        the dtype's exponent range)."""
        log_z = self._log_z(lams, heuristic, fn)
        bad = torch.isneginf(log_z.detach())
        if bool(bad.any()):
            with torch.no_grad():
                possible = self._log_z([lam.detach()[bad] for lam in lams], heuristic, fn, True)
            if bool(torch.isfinite(possible).any()):
                raise FloatingPointError(
                    f"{fn}: Z underflowed to 0 in {self.dtype} although some configurations "
                    "are possible: factors that disagree have log-potentials spanning more "
                    "than the dtype's exponent range (about 745 in float64, 87 in float32)"
                )
        return log_z

    def log_partition(self, evidence: Evidence = None, *, heuristic: Heuristic = None) -> Tensor:
        r""":math:`\log Z = \log \sum_x \prod_f \phi_f(x_f)` by contraction, or
        :math:`\log Z(e)`, the same sum over the assignments that agree with each
        evidence row.

        Works in linear space like :class:`~mldl.pgm.inference.Plan`: each factor is
        exponentiated after subtracting its largest log-potential :math:`m_f`, and
        :math:`\sum_f m_f` is added back; every contraction step is rescaled, so long
        products never underflow. (Precision is lost only when factors that disagree
        each span more than the dtype's exponent range; an underflow to :math:`Z = 0`
        is detected and raised.) The full joint is never built; the cost is
        :meth:`plan` ``.width`` states per evidence row.

        Shape:
            ``()`` without evidence, else ``(B,)`` (``-inf`` for impossible rows).

        >>> mrf = MarkovRandomField.ising_chain(10, J=1.0, beta=0.5)
        >>> torch.isclose(mrf.log_partition(), ising_chain_log_partition(10, 1.0, 0.0, 0.5))
        tensor(True)
        """
        fn = "MarkovRandomField.log_partition"
        rows = None if evidence is None else self._evidence(evidence, fn)
        log_z = self._checked_log_z(self._indicators(rows), heuristic, fn)
        return log_z[0] if rows is None else log_z

    def marginals(
        self, evidence: Evidence = None, *, heuristic: Heuristic = None
    ) -> dict[str, Tensor]:
        r"""Exact single-variable marginals :math:`P(x_v \mid e)` per evidence row.

        Evidence enters as indicators :math:`\lambda_v` (one-hot where observed, ones
        elsewhere) and :math:`P(x_v = s \mid e) = \lambda_v(s)\,\partial \log Z(\lambda)
        / \partial \lambda_v(s)`: one contraction and its backward give every marginal
        for every row. Evidence: a dict ``{name: state name or index}`` (one row), a dict
        ``{name: (B,) LongTensor}`` or a (B, n) LongTensor, with -1 for unobserved.

        Shape:
            ``{name: (B, k_name)}`` (B = 1 without evidence); observed variables are
            one-hot. Raises :class:`~mldl.pgm.ImpossibleEvidence` for rows with
            :math:`Z(e) = 0`.

        >>> mrf = MarkovRandomField.ising_chain(3, J=1.0, h=0.0, periodic=False)
        >>> mrf.marginals({"s0": "+1"})["s1"]          # e^1 / (e^1 + e^-1)
        tensor([[0.1192, 0.8808]], dtype=torch.float64)
        """
        fn = "MarkovRandomField.marginals"
        rows = self._evidence(evidence, fn)
        lams = [lam.requires_grad_() for lam in self._indicators(rows)]
        with torch.enable_grad():
            log_z = self._checked_log_z(lams, heuristic, fn)
            self._check_possible(log_z, rows, fn)
            grads = torch.autograd.grad(log_z.sum(), lams)
        return {v: lam.detach() * g for v, lam, g in zip(self.variables, lams, grads, strict=True)}

    def most_probable_explanation(
        self, evidence: Evidence = None, *, heuristic: Heuristic = None
    ) -> tuple[Tensor, Tensor]:
        """The most probable assignment per evidence row (max-product on the same plan)
        and its unnormalised log-probability :math:`\\sum_f \\log\\phi_f(x^*_f) = -E(x^*)`.

        Shape:
            assignment ``(B, n)`` LongTensor, value ``(B,)``.
        """
        fn = "MarkovRandomField.most_probable_explanation"
        rows = self._evidence(evidence, fn)
        p = self._checked_plan(heuristic, fn)
        with torch.no_grad():
            tensors, shift = self._linear()
            lams = self._indicators(rows)
            batched = [False] * len(tensors) + [True] * len(lams)
            x, value = p.max_assignment([*tensors, *lams], batched, len(rows))
        value = value + shift
        self._check_possible(value, rows, fn)
        return x, value

    def log_prob(self, x: Tensor, *, heuristic: Heuristic = None) -> Tensor:
        r""":math:`\log P(x) = -E(x) - \log Z` of each assignment; entries -1 are summed
        out (:math:`\log Z(x_{obs}) - \log Z`, the marginal of what the row observes).

        Shape:
            ``x``: ``(..., n)`` state indices, columns in :attr:`variables` order;
            returns ``(...)``.
        """
        fn = "MarkovRandomField.log_prob"
        x = self._assignments(x, fn, missing=True)
        flat = x.reshape(-1, len(self.variables))
        log_z = self.log_partition(heuristic=heuristic)
        if bool(torch.isneginf(log_z)):
            raise ImpossibleEvidence(f"{fn}: the model gives every configuration probability 0")
        complete = (flat >= 0).all(1)
        out = -self._energy(flat.clamp_min(0)) - log_z
        if not bool(complete.all()):
            rows = flat[~complete]
            partial = self._checked_log_z(self._indicators(rows), heuristic, fn) - log_z
            out = out.masked_scatter(~complete, partial)
        return out.reshape(x.shape[:-1])

    def _check_possible(self, log_z: Tensor, rows: Tensor, fn: str) -> None:
        impossible = torch.isneginf(log_z.detach()).nonzero().flatten()
        if impossible.numel():
            r = int(impossible[0])
            seen = {
                self.variables[i]: self.states[self.variables[i]][int(s)]
                for i, s in enumerate(rows[r])
                if s >= 0
            }
            raise ImpossibleEvidence(
                f"{fn}: evidence: {impossible.numel()} row(s) have probability 0 under the "
                f"field (rows {impossible[:10].tolist()}); row {r}: {seen}"
            )

    # ------------------------------------------------------------------ evidence, data

    def _evidence(self, evidence: Evidence, fn: str) -> Tensor:
        """Evidence as a (B, n) LongTensor of state indices, -1 where unobserved."""
        n = len(self.variables)
        if evidence is None:
            return torch.full((1, n), -1, dtype=torch.long, device=self.device)
        if isinstance(evidence, Tensor):
            if evidence.dim() == 1:
                evidence = evidence.unsqueeze(0)
            if evidence.dim() != 2 or evidence.shape[1] != n:
                raise ValueError(
                    f"{fn}: evidence: expected a (B, {n}) tensor (columns in mrf.variables "
                    f"order), got shape {tuple(evidence.shape)}"
                )
            if evidence.is_floating_point() or evidence.dtype == torch.bool:
                raise TypeError(
                    f"{fn}: evidence: expected integer state indices, got {evidence.dtype}"
                )
            out = evidence.long().to(self.device)
        elif isinstance(evidence, Mapping):
            unknown = [v for v in evidence if v not in self.states]
            if unknown:
                raise ValueError(
                    f"{fn}: evidence: unknown variables {unknown} (variables: "
                    f"{self.variables[:8]}{'...' if n > 8 else ''})"
                )
            batched = [v for v, s in evidence.items() if isinstance(s, Tensor) and s.dim() > 0]
            rows = len(evidence[batched[0]]) if batched else 1
            out = torch.full((rows, n), -1, dtype=torch.long, device=self.device)
            for v, s in evidence.items():
                out[:, self._index[v]] = self._state_index(v, s, rows, fn)
        else:
            raise TypeError(
                f"{fn}: evidence: expected a dict or a LongTensor, got {type(evidence).__name__}"
            )
        self._check_range(out, fn, "evidence", low=-1)
        return out

    def _state_index(self, v: str, s: object, rows: int, fn: str) -> Tensor:
        states = self.states[v]
        if isinstance(s, str):
            if s not in states:
                raise ValueError(f"{fn}: evidence: {v!r} has no state {s!r} (states: {states})")
            return torch.full((rows,), states.index(s), dtype=torch.long, device=self.device)
        if isinstance(s, Tensor):
            if s.is_floating_point() or s.dtype == torch.bool:
                raise TypeError(f"{fn}: evidence: {v!r}: expected state indices, got {s.dtype}")
            if s.dim() == 0:
                return s.long().to(self.device).expand(rows)
            if s.dim() != 1 or len(s) != rows:
                raise ValueError(
                    f"{fn}: evidence: {v!r} has shape {tuple(s.shape)}, expected ({rows},)"
                )
            return s.long().to(self.device)
        i = _checks.integer(s, v, f"{fn}: evidence")
        return torch.full((rows,), i, dtype=torch.long, device=self.device)

    def _check_range(self, x: Tensor, fn: str, name: str, low: int) -> None:
        cards = torch.tensor(self._cards, device=x.device)
        bad = (x < low) | (x >= cards)
        if bool(bad.any()):
            where = bad.nonzero()[0].tolist()
            c = where[-1]
            extra = " (or -1)" if low < 0 else ""
            raise ValueError(
                f"{fn}: {name}: at index {tuple(where)}, {self.variables[c]!r}: state index "
                f"{int(x[tuple(where)])} outside [0, {self._cards[c] - 1}]{extra}"
            )

    def _assignments(self, x: object, fn: str, *, missing: bool = False, name: str = "x"):
        x = _checks.tensor(x, name, fn)
        n = len(self.variables)
        if x.dim() == 0 or x.shape[-1] != n:
            raise ValueError(
                f"{fn}: {name}: expected shape (..., {n}) (columns in mrf.variables order), "
                f"got {tuple(x.shape)}"
            )
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{fn}: {name}: expected integer state indices, got {x.dtype}")
        x = x.long().to(self.device)
        self._check_range(x, fn, name, low=-1 if missing else 0)
        return x

    def _indicators(self, rows: Tensor | None) -> list[Tensor]:
        """λ_v per variable: (B, k_v), one-hot where observed, ones elsewhere."""
        if rows is None:
            return [torch.ones(1, k, dtype=self.dtype, device=self.device) for k in self._cards]
        out = []
        for i, k in enumerate(self._cards):
            col = rows[:, i]
            hot = torch.nn.functional.one_hot(col.clamp_min(0), k).to(self.dtype)
            out.append(torch.where((col >= 0).unsqueeze(1), hot, torch.ones_like(hot)))
        return out

    # ------------------------------------------------------------------------- energy

    @cached_property
    def _layout(self) -> dict:
        """Where each factor lives in the flat bank of all log-potentials (the factors'
        tables flattened and concatenated, then one 0 entry for padding), and per
        variable the (factor, position) pairs that contain it."""
        offsets, strides, pos = [], [], 0
        for f in self.factors:
            shape = f.values.shape
            st = [math.prod(shape[q + 1 :]) for q in range(len(shape))]
            offsets.append(pos)
            strides.append(st)
            pos += f.values.numel()
        var_factors: list[list[tuple[int, int]]] = [[] for _ in self.variables]
        for j, scope in enumerate(self._scopes):
            for p, v in enumerate(scope):
                var_factors[v].append((j, p))
        arity = max((len(s) for s in self._scopes), default=0)
        return {
            "offsets": offsets,
            "strides": strides,
            "zero": pos,
            "var_factors": var_factors,
            "arity": max(arity, 1),
        }

    def _bank(self) -> Tensor:
        """All log-potentials, flattened and concatenated, then a 0 (kept in the autograd
        graph when a factor requires grad)."""
        parts = [f.values.reshape(-1) for f in self.factors]
        parts.append(torch.zeros(1, dtype=self.dtype, device=self.device))
        return torch.cat(parts)

    @cached_property
    def _factor_index(self) -> tuple[Tensor, Tensor, Tensor]:
        lay, n = self._layout, len(self.variables)
        a = lay["arity"]
        cols = [list(s) + [n] * (a - len(s)) for s in self._scopes]
        strides = [st + [0] * (a - len(st)) for st in lay["strides"]]
        dev = self.device
        return (
            torch.tensor(cols, dtype=torch.long, device=dev).reshape(-1, a),
            torch.tensor(strides, dtype=torch.long, device=dev).reshape(-1, a),
            torch.tensor(lay["offsets"], dtype=torch.long, device=dev),
        )

    def energy(self, x: Tensor) -> Tensor:
        r""":math:`E(x) = -\sum_f \log\phi_f(x_f)` of each assignment (``+inf`` where a
        factor forbids it), gathered from all factors at once.

        Shape:
            ``x``: ``(..., n)`` state indices (columns in :attr:`variables` order);
            returns ``(...)`` in the field's dtype.

        >>> mrf = MarkovRandomField.ising_chain(3, J=1.0, periodic=False)
        >>> mrf.energy(torch.tensor([[1, 1, 1], [1, 0, 1]]))   # -J Σ s_i s_j
        tensor([-2.,  2.], dtype=torch.float64)
        """
        x = self._assignments(x, "MarkovRandomField.energy")
        return self._energy(x.reshape(-1, len(self.variables))).reshape(x.shape[:-1])

    def _energy(self, flat: Tensor) -> Tensor:
        cols, strides, offsets = self._factor_index
        bank = self._bank()
        if not self.factors:
            return torch.zeros(len(flat), dtype=self.dtype, device=self.device)
        step = max(1, _GATHER_BUDGET // (cols.numel() or 1))
        parts = []
        for s in range(0, len(flat), step):
            rows = flat[s : s + step]
            xe = torch.cat([rows, rows.new_zeros(len(rows), 1)], 1)
            idx = (xe[:, cols] * strides).sum(-1) + offsets  # (b, F)
            parts.append(-bank[idx].sum(-1))
        return torch.cat(parts) if parts else bank.new_zeros(0)

    # ------------------------------------------------------------------------- Gibbs

    def _blanket(self, variables: Sequence[int]) -> _Blanket:
        lay, n = self._layout, len(self.variables)
        a = lay["arity"]
        lists = [lay["var_factors"][v] for v in variables]
        width = max((len(fs) for fs in lists), default=0)
        cols, strides, offsets, own = [], [], [], []
        for fs in lists:
            c_row, s_row, o_row, w_row = [], [], [], []
            for j, p in fs:
                scope, st = self._scopes[j], lay["strides"][j]
                c_row.append([u if q != p else n for q, u in enumerate(scope)])
                c_row[-1] += [n] * (a - len(scope))
                s_row.append([s if q != p else 0 for q, s in enumerate(st)])
                s_row[-1] += [0] * (a - len(scope))
                o_row.append(lay["offsets"][j])
                w_row.append(st[p])
            pad = width - len(fs)
            cols.append(c_row + [[n] * a] * pad)
            strides.append(s_row + [[0] * a] * pad)
            offsets.append(o_row + [lay["zero"]] * pad)
            own.append(w_row + [0] * pad)
        dev, s_count = self.device, len(variables)
        cards = torch.tensor([self._cards[v] for v in variables], device=dev)
        k = int(cards.max())
        ar = torch.arange(k, device=dev)
        return _Blanket(
            vars=torch.tensor(list(variables), dtype=torch.long, device=dev),
            cols=torch.tensor(cols, dtype=torch.long, device=dev)
            .reshape(s_count, width, a)
            .permute(2, 0, 1)
            .contiguous(),
            strides=torch.tensor(strides, dtype=torch.long, device=dev)
            .reshape(s_count, width, a)
            .permute(2, 0, 1)
            .contiguous(),
            offsets=torch.tensor(offsets, dtype=torch.long, device=dev).reshape(s_count, width),
            own=torch.tensor(own, dtype=torch.long, device=dev).reshape(s_count, width),
            states=torch.minimum(ar.unsqueeze(0), (cards - 1).unsqueeze(1)),
            pad=torch.where(ar.unsqueeze(0) < cards.unsqueeze(1), 0.0, -math.inf).to(self.dtype),
        )

    @staticmethod
    def _blanket_logits(xe: Tensor, b: _Blanket, bank: Tensor) -> Tensor:
        """:math:`\\sum_{f \\ni i} \\log\\phi_f(x_i = s, x_{-i})` for the blanket's
        variables and every state s, per row of ``xe`` (C, n + 1: the assignments and a
        column of zeros): shape (C, S, K)."""
        base = b.offsets + xe[:, b.cols[0]] * b.strides[0]  # (C, S, F)
        for a in range(1, len(b.cols)):
            base = base + xe[:, b.cols[a]] * b.strides[a]
        idx = base.unsqueeze(2) + b.states.unsqueeze(-1) * b.own.unsqueeze(1)  # (C, S, K, F)
        return bank[idx].sum(-1) + b.pad

    def conditional(self, x: Tensor, variable: str) -> Tensor:
        r""":math:`P(x_v = s \mid x_{-v}) = \prod_{f \ni v}\phi_f(s, x_{f \setminus v}) /
        \sum_{s'} \prod_{f \ni v} \phi_f(s', x_{f \setminus v})`: only the factors that
        contain v (its Markov blanket) matter; Z cancels. This is the distribution
        :meth:`gibbs` draws from.

        Shape:
            ``x``: ``(B, n)`` or ``(n,)`` assignments (the column of v is ignored);
            returns ``(B, k_v)`` (``(k_v,)`` for one row). Rows where every state of v is
            impossible give NaN.
        """
        fn = "MarkovRandomField.conditional"
        i = self._variable(variable, fn)
        x = self._assignments(x, fn)
        one = x.dim() == 1
        x = x.reshape(-1, len(self.variables))
        with torch.no_grad():
            xe = torch.cat([x, x.new_zeros(len(x), 1)], 1)
            logits = self._blanket_logits(xe, self._blanket([i]), self._bank().detach())
        probs = torch.softmax(logits[:, 0, : self._cards[i]], -1)
        return probs[0] if one else probs

    @cached_property
    def _colours(self) -> list[list[int]]:
        """A greedy colouring of the graph: variables of one colour share no factor, so
        they are independent given all the others and can be resampled together."""
        colour: list[int] = []
        for v in range(len(self.variables)):
            used = {colour[u] for u in self._adjacency[v] if u < v}
            colour.append(next(c for c in range(len(used) + 1) if c not in used))
        groups: dict[int, list[int]] = {}
        for v, c in enumerate(colour):
            groups.setdefault(c, []).append(v)
        return [groups[c] for c in sorted(groups)]

    def gibbs(
        self,
        n_samples: int,
        *,
        burn_in: int = 100,
        thin: int = 1,
        n_chains: int = 1,
        init: Tensor | None = None,
        generator: torch.Generator | None = None,
        flatten: bool = False,
    ) -> Tensor:
        r"""Gibbs sampling: repeatedly redraw each variable from
        :math:`P(x_i \mid x_{-i}) \propto \prod_{f \ni i}\phi_f(x_f)` (:meth:`conditional`).

        Each conditional is gathered on the fly from the slices of the factors that
        contain :math:`x_i` at the current states of its blanket (cost: the size of those
        factors), never from a table over all other variables. Variables that share no
        factor are conditionally independent, so one sweep updates each colour class of a
        greedy graph colouring at once (the two sublattices of a grid: a checkerboard
        sweep), vectorised over chains. A sweep updates every variable once.

        Args:
            n_samples: samples kept per chain.
            burn_in: sweeps discarded first.
            thin: sweeps between kept samples.
            n_chains: independent chains run side by side.
            init: starting states, ``(n_chains, n)`` or ``(n,)`` (default: uniform at
                random). A chain started at a configuration of probability 0 moves
                through such configurations until it enters the support (burn-in must
                cover that).
            generator: the random source (on the field's device).
            flatten: return ``(n_samples * n_chains, n)`` (sample-major) instead.

        Shape:
            ``(n_samples, n_chains, n)`` LongTensor of state indices.

        >>> mrf = MarkovRandomField.ising_2d(4, J=0.3)
        >>> x = mrf.gibbs(100, n_chains=8, generator=torch.Generator().manual_seed(0))
        >>> x.shape
        torch.Size([100, 8, 16])
        """
        fn = "MarkovRandomField.gibbs"
        n_samples = _checks.integer(n_samples, "n_samples", fn, low=0)
        burn_in = _checks.integer(burn_in, "burn_in", fn, low=0)
        thin = _checks.integer(thin, "thin", fn, low=1)
        n_chains = _checks.integer(n_chains, "n_chains", fn, low=1)
        n = len(self.variables)
        cards = torch.tensor(self._cards, device=self.device)
        if init is None:
            u = torch.rand(n_chains, n, generator=generator, dtype=self.dtype, device=self.device)
            x = (u * cards).long().clamp_max(cards - 1)
        else:
            x = self._assignments(init, fn, name="init")
            if x.dim() == 1:
                x = x.unsqueeze(0).expand(n_chains, n)
            if tuple(x.shape) != (n_chains, n):
                raise ValueError(
                    f"{fn}: init: expected shape ({n_chains}, {n}) or ({n},), got {tuple(x.shape)}"
                )
        # the states and a constant-0 column (what padded gather slots read)
        xe = torch.cat([x, x.new_zeros(n_chains, 1)], 1)
        blankets = self.__dict__.get("_gibbs_blankets")
        if blankets is None:
            blankets = self.__dict__["_gibbs_blankets"] = [self._blanket(c) for c in self._colours]
        out = torch.empty(n_samples, n_chains, n, dtype=torch.long, device=self.device)
        tiny = torch.finfo(self.dtype).tiny
        kept = 0
        with torch.no_grad():
            bank = self._bank()
            for sweep in range(burn_in + n_samples * thin):
                for b in blankets:
                    logits = self._blanket_logits(xe, b, bank)  # (C, S, K)
                    dead = torch.isneginf(logits).all(-1, keepdim=True)
                    logits = torch.where(dead, b.pad.expand_as(logits), logits)
                    u = torch.rand(
                        logits.shape, generator=generator, dtype=self.dtype, device=self.device
                    )
                    gumbel = -torch.log(-torch.log(u.clamp_min(tiny)))
                    xe[:, b.vars] = (logits + gumbel).argmax(-1)
                if sweep >= burn_in and (sweep - burn_in + 1) % thin == 0:
                    out[kept] = xe[:, :n]
                    kept += 1
        return out.reshape(-1, n) if flatten else out

    # ------------------------------------------------------------ belief propagation

    @cached_property
    def _bp(self) -> dict:
        """The factor graph's edges (one per factor and position) and the factors grouped
        by shape, so each group's messages are one batched logsumexp."""
        edge_var, groups, pos = [], {}, 0
        for j, scope in enumerate(self._scopes):
            if not scope:
                continue
            ids = list(range(pos, pos + len(scope)))
            edge_var += list(scope)
            pos += len(scope)
            key = tuple(self._cards[v] for v in scope)
            groups.setdefault(key, ([], []))
            groups[key][0].append(j)
            groups[key][1].append(ids)
        dev = self.device
        degree = torch.zeros(len(self.variables), dtype=self.dtype, device=dev)
        edge_var_t = torch.tensor(edge_var, dtype=torch.long, device=dev)
        degree.index_add_(0, edge_var_t, torch.ones(len(edge_var), dtype=self.dtype, device=dev))
        return {
            "edge_var": edge_var_t,
            "groups": [
                (cards, js, torch.tensor(ids, dtype=torch.long, device=dev).T.contiguous())
                for cards, (js, ids) in groups.items()
            ],
            "degree": degree,
            "scalars": [j for j, s in enumerate(self._scopes) if not s],
        }

    def loopy_belief_propagation(
        self,
        evidence: Evidence = None,
        *,
        max_iter: int = 100,
        tol: float = 1e-8,
        damping: float = 0.0,
    ) -> BeliefPropagationResult:
        r"""Sum-product message passing on the factor graph, in log space, all messages
        updated in parallel (vectorised over factors of one shape and over evidence rows):

        .. math::

            \mu_{i \to f}(x_i) = \lambda_i(x_i) \prod_{g \ni i,\, g \ne f} \mu_{g \to i}(x_i),
            \qquad
            \mu_{f \to i}(x_i) = \sum_{x_{f \setminus i}} \phi_f(x_f)
                \prod_{j \in f,\, j \ne i} \mu_{j \to f}(x_j),

        beliefs :math:`b_i \propto \lambda_i \prod_{f \ni i} \mu_{f \to i}`. On a tree
        (factor graph without cycles) it converges within its diameter and is exact;
        with cycles it is an approximation (good when interactions are weak, e.g. Ising
        at high temperature) and may oscillate (``damping`` in [0, 1) mixes each new
        message with the old: :math:`\mu \leftarrow (1-d)\mu_{new} + d\mu_{old}`).

        ``log_partition`` is the Bethe approximation
        :math:`\sum_f \sum_{x_f} b_f(\log\phi_f - \log b_f) + \sum_i (d_i - 1)\sum_{x_i}
        b_i \log b_i`, exact on trees. Zero potentials are handled by a log floor of
        :math:`-10^5` (probability exactly 0).

        Shape:
            marginals ``{name: (B, k)}`` (B = 1 without evidence); log_partition ``(B,)``.

        >>> mrf = MarkovRandomField.ising_chain(6, J=1.0, h=0.3, periodic=False)
        >>> bp = mrf.loopy_belief_propagation()
        >>> bp.converged, torch.allclose(bp.marginals["s2"], mrf.marginals()["s2"])
        (True, True)
        """
        fn = "MarkovRandomField.loopy_belief_propagation"
        max_iter = _checks.integer(max_iter, "max_iter", fn, low=0)
        tol = _checks.number(tol, "tol", fn, low=0.0)
        damping = _checks.number(damping, "damping", fn, low=0.0, high=1.0, high_open=True)
        rows = self._evidence(evidence, fn)
        bp, dev, dt = self._bp, self.device, self.dtype
        b_rows, k = len(rows), max(self._cards)
        cards = torch.tensor(self._cards, device=dev)
        ar = torch.arange(k, device=dev)
        valid = ar < cards.unsqueeze(1)  # (n, K)
        allowed = valid & ((rows.unsqueeze(-1) < 0) | (rows.unsqueeze(-1) == ar))  # (B, n, K)
        lam = torch.where(allowed, 0.0, _FLOOR).to(dt)
        edge_var = bp["edge_var"]
        groups = [
            (c, ids, self._group_potentials(js).clamp_min(_FLOOR)) for c, js, ids in bp["groups"]
        ]
        msg = torch.where(valid[edge_var], 0.0, _FLOOR).to(dt).expand(b_rows, -1, -1)
        iterations, change, converged = 0, 0.0, len(edge_var) == 0
        with torch.no_grad():
            while not converged and iterations < max_iter:
                to_factor = self._var_to_factor(lam, msg, edge_var)
                new = self._factor_to_var(to_factor, groups, msg)
                if damping > 0:
                    new = torch.logaddexp(new + math.log1p(-damping), msg + math.log(damping))
                    new = new.clamp_min(_FLOOR)
                change = float((new.exp() - msg.exp()).abs().max())
                msg, iterations = new, iterations + 1
                converged = change < tol
            total = lam.index_add(1, edge_var, msg)  # (B, n, K)
            log_b = total - torch.logsumexp(total, -1, keepdim=True)
            b = log_b.exp()
            # Bethe free energy at the final messages
            to_factor = self._var_to_factor(lam, msg, edge_var)
            log_z = torch.zeros(b_rows, dtype=dt, device=dev)
            for j in bp["scalars"]:
                log_z = log_z + self.factors[j].values.detach()
            for c, ids, phi in groups:
                views = self._views(to_factor, c, ids)
                incoming = sum(views)
                t = phi + incoming  # (B, G, *c)
                dims = tuple(range(2, 2 + len(c)))
                lse = torch.logsumexp(t, dim=dims)
                bf = (t - lse.reshape(*lse.shape, *([1] * len(c)))).exp()
                log_z = log_z + (lse - (bf * incoming).sum(dims)).sum(1)
            entropy_term = (b * log_b).sum(-1)  # (B, n)
            log_z = log_z + ((bp["degree"] - 1) * entropy_term).sum(1) + (b * lam).sum((1, 2))
        marginals = {v: b[:, i, : self._cards[i]] for i, v in enumerate(self.variables)}
        return BeliefPropagationResult(marginals, log_z, converged, iterations, change)

    def _group_potentials(self, js: list[int]) -> Tensor:
        return torch.stack([self.factors[j].values.detach() for j in js]).unsqueeze(0)

    @staticmethod
    def _var_to_factor(lam: Tensor, msg: Tensor, edge_var: Tensor) -> Tensor:
        """:math:`\\mu_{i\\to f} = \\lambda_i + \\sum_{g \\ni i} \\mu_{g \\to i} - \\mu_{f \\to i}`
        (log space), normalised: (B, E, K)."""
        total = lam.index_add(1, edge_var, msg)
        out = (total[:, edge_var] - msg).clamp_min(_FLOOR)
        return (out - torch.logsumexp(out, -1, keepdim=True)).clamp_min(_FLOOR)

    @staticmethod
    def _views(to_factor: Tensor, cards: tuple[int, ...], ids: Tensor) -> list[Tensor]:
        """The messages into a group's factors, each shaped to broadcast over the factor
        axes: position p gives (B, G, 1, .., k_p, .., 1)."""
        out = []
        for p, k in enumerate(cards):
            m = to_factor[:, ids[p], :k]  # (B, G, k_p)
            shape = [1] * len(cards)
            shape[p] = k
            out.append(m.reshape(m.shape[0], m.shape[1], *shape))
        return out

    def _factor_to_var(self, to_factor: Tensor, groups: list, like: Tensor) -> Tensor:
        new = torch.full_like(like, _FLOOR).contiguous()
        for c, ids, phi in groups:
            views = self._views(to_factor, c, ids)
            for p, k in enumerate(c):
                t = phi
                for q, v in enumerate(views):
                    if q != p:
                        t = t + v
                dims = tuple(2 + q for q in range(len(c)) if q != p)
                out = torch.logsumexp(t, dim=dims) if dims else t
                out = out.reshape(out.shape[0], out.shape[1], k)
                out = (out - torch.logsumexp(out, -1, keepdim=True)).clamp_min(_FLOOR)
                new[:, ids[p], :k] = out
        return new

    # ------------------------------------------------------------------ constructors

    @classmethod
    def ising_chain(
        cls,
        n: int,
        J: float = 1.0,
        h: float = 0.0,
        beta: float = 1.0,
        periodic: bool = True,
        **kwargs,
    ) -> MarkovRandomField:
        r"""The 1D Ising model, :math:`P(s) \propto \exp(\beta J \sum_i s_i s_{i+1} +
        \beta h \sum_i s_i)`, spins :math:`s_i \in \{-1, +1\}` (states ``["-1", "+1"]``),
        variables ``s0 .. s{n-1}``; ``periodic`` adds the bond :math:`s_{n-1} s_0` (for
        n = 2 that is a second bond between the two spins, as in the transfer matrix
        :math:`Z = \mathrm{tr}\, T^n`). See :func:`ising_chain_log_partition`."""
        fn = "MarkovRandomField.ising_chain"
        n = _checks.integer(n, "n", fn, low=2 if periodic else 1)
        names = [f"s{i}" for i in range(n)]
        bonds = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if periodic else [])
        return cls._ising(names, bonds, J, h, beta, fn, kwargs)

    @classmethod
    def ising_2d(
        cls,
        L: int,
        J: float = 1.0,
        h: float = 0.0,
        beta: float = 1.0,
        periodic: bool = False,
        **kwargs,
    ) -> MarkovRandomField:
        r"""The square-lattice Ising model on an L×L grid,
        :math:`P(s) \propto \exp(-\beta H(s))`,
        :math:`H(s) = -J\sum_{\langle ij \rangle} s_i s_j - h \sum_i s_i`, spins in
        ``["-1", "+1"]``, variables ``s{row}_{col}`` in row-major order. ``periodic``
        wraps both directions (a torus; L = 2 then has doubled bonds). Exact inference
        costs about :math:`2^{L+1}` states per clique (treewidth L); the
        infinite lattice orders below :data:`ISING_2D_CRITICAL_TEMPERATURE`
        (:func:`onsager_magnetization`).

        >>> MarkovRandomField.ising_2d(4).treewidth()
        4
        """
        fn = "MarkovRandomField.ising_2d"
        L = _checks.integer(L, "L", fn, low=2 if periodic else 1)
        names = [f"s{r}_{c}" for r in range(L) for c in range(L)]
        bonds = []
        for r in range(L):
            for c in range(L):
                if c + 1 < L or periodic:
                    bonds.append((r * L + c, r * L + (c + 1) % L))
                if r + 1 < L or periodic:
                    bonds.append((r * L + c, ((r + 1) % L) * L + c))
        return cls._ising(names, bonds, J, h, beta, fn, kwargs)

    @classmethod
    def _ising(cls, names, bonds, J, h, beta, fn, kwargs) -> MarkovRandomField:
        J = _checks.number(J, "J", fn)
        h = _checks.number(h, "h", fn)
        beta = _checks.number(beta, "beta", fn, low=0.0)
        dtype = kwargs.get("dtype", torch.float64)
        device = kwargs.get("device")
        spin = torch.tensor([-1.0, 1.0], dtype=dtype, device=device)
        pair = beta * J * torch.outer(spin, spin)
        field = beta * h * spin
        factors = [((names[a], names[b]), pair) for a, b in bonds]
        if h != 0.0:
            factors += [((v,), field) for v in names]
        kwargs.setdefault("name", fn.split(".")[-1])
        kwargs.setdefault("order", names)
        return cls({v: ["-1", "+1"] for v in names}, factors, **kwargs)

    @classmethod
    def fully_visible_boltzmann_machine(
        cls,
        W: Tensor,
        b: Tensor,
        names: Sequence[str] | None = None,
        **kwargs,
    ) -> MarkovRandomField:
        r"""The notes' "Boltzmann machine without latent variables", a log-linear model
        over :math:`x \in \{0, 1\}^n`:

        .. math:: P(x) = \frac{1}{Z}\exp\left(\tfrac12 x^\top W x + b^\top x\right),
            \qquad E(x) = -\tfrac12 x^\top W x - b^\top x,

        with W symmetric and zero on the diagonal (:math:`x_i^2 = x_i`, so a diagonal
        would only move the bias). Built as one factor
        :math:`\tfrac12 (W_{ij} + W_{ji}) x_i x_j` per pair with :math:`W_{ij} \neq 0` (the
        graph is W's sparsity pattern; every pair when ``W`` requires grad, so that a zero
        coupling still gets its gradient) and one :math:`b_i x_i` per unit. Gradients flow
        to ``W`` and ``b`` when they require grad, and the gradient of ``W`` is symmetric:
        a gradient step keeps ``W`` a valid coupling matrix.

        Shape:
            ``W``: ``(n, n)``, ``b``: ``(n,)``; variables ``x0 .. x{n-1}`` (or ``names``),
            states ``["0", "1"]``.

        >>> W = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
        >>> bm = MarkovRandomField.fully_visible_boltzmann_machine(W, torch.tensor([-1.0, 0.5]))
        >>> bm.energy(torch.tensor([1, 1]))            # -(W_01 + b_0 + b_1)
        tensor(-1.5000, dtype=torch.float64)
        """
        fn = "MarkovRandomField.fully_visible_boltzmann_machine"
        W = _checks.floating(W, "W", fn)
        b = _checks.floating(b, "b", fn)
        if W.dim() != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"{fn}: W: expected a square (n, n) matrix, got {tuple(W.shape)}")
        n = W.shape[0]
        if tuple(b.shape) != (n,):
            raise ValueError(f"{fn}: b: expected shape ({n},), got {tuple(b.shape)}")
        _checks.same_device({"W": W, "b": b}, fn)
        w = W.detach()
        if not bool(torch.isfinite(w).all()) or not bool(torch.isfinite(b.detach()).all()):
            raise ValueError(f"{fn}: W and b: expected finite values")
        scale = max(1.0, float(w.abs().max())) if n else 1.0
        if bool(((w - w.T).abs() > 1e-10 * scale).any()):
            raise ValueError(
                f"{fn}: W: expected a symmetric matrix, got max |W - W^T| = "
                f"{float((w - w.T).abs().max()):.3g}"
            )
        if bool((w.diagonal().abs() > 1e-10 * scale).any()):
            raise ValueError(
                f"{fn}: W: expected a zero diagonal (x_i^2 = x_i: put it in b), got "
                f"max |W_ii| = {float(w.diagonal().abs().max()):.3g}"
            )
        names = [f"x{i}" for i in range(n)] if names is None else list(names)
        if len(names) != n:
            raise ValueError(f"{fn}: names: expected {n} names, got {len(names)}")
        dtype = kwargs.get("dtype", torch.float64)
        kwargs.setdefault("device", W.device)
        W, b = W.to(dtype), b.to(dtype)
        zero = W.new_zeros(())
        coupling = (W + W.T) / 2  # its gradient reaches W_ij and W_ji alike
        every_pair = W.requires_grad
        factors = [
            ((names[i], names[j]), torch.stack([zero, zero, zero, coupling[i, j]]).reshape(2, 2))
            for i in range(n)
            for j in range(i + 1, n)
            if every_pair or float(w[i, j]) != 0.0
        ]
        factors += [((names[i],), torch.stack([zero, b[i]])) for i in range(n)]
        kwargs.setdefault("name", "boltzmann_machine")
        return cls({v: ["0", "1"] for v in names}, factors, **kwargs)


# ---------------------------------------------------------------------------- helpers


def _parse_states(states: object, fn: str, allow_empty: bool = False) -> dict[str, list[str]]:
    if not isinstance(states, Mapping):
        raise TypeError(
            f"{fn}: states: expected a dict {{variable: [state names] or cardinality}}, got "
            f"{type(states).__name__}"
        )
    if not states and not allow_empty:
        raise ValueError(f"{fn}: states: expected at least one variable, got none")
    out = {}
    for v, s in states.items():
        if not isinstance(v, str):
            raise TypeError(f"{fn}: states: variable names must be strings, got {v!r}")
        if isinstance(s, numbers.Integral) and not isinstance(s, bool):
            k = _checks.integer(s, f"states[{v!r}]", fn, low=1)
            out[v] = [str(i) for i in range(k)]
            continue
        if isinstance(s, str) or not isinstance(s, Sequence):
            raise TypeError(
                f"{fn}: states: {v!r}: expected a list of state names or a cardinality, got {s!r}"
            )
        names = list(s)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{fn}: states: {v!r} needs distinct state names, got {names}")
        out[v] = names
    return out


def magnetization(samples: Tensor) -> Tensor:
    r"""Mean spin :math:`M = \frac1n \sum_i s_i` of each Ising configuration, with state
    index 0 ↦ -1 and 1 ↦ +1 (the states of :meth:`MarkovRandomField.ising_2d`).

    Shape:
        ``samples``: ``(..., n)`` state indices; returns ``(...)`` float64. Below
        :math:`T_c` a finite lattice flips between :math:`\pm M`: average ``.abs()``.

    >>> magnetization(torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]]))
    tensor([ 0.5000, -1.0000], dtype=torch.float64)
    """
    fn = "magnetization"
    _checks.tensor(samples, "samples", fn)
    if samples.is_floating_point() or samples.dtype == torch.bool or samples.dim() == 0:
        raise TypeError(
            f"{fn}: samples: expected integer state indices of shape (..., n), got "
            f"{samples.dtype} of shape {tuple(samples.shape)}"
        )
    if samples.numel() and bool(((samples < 0) | (samples > 1)).any()):
        raise ValueError(f"{fn}: samples: expected spin state indices 0 (-1) or 1 (+1)")
    return (2 * samples.double() - 1).mean(-1)


def ising_chain_log_partition(n: int, J: float = 1.0, h: float = 0.0, beta: float = 1.0) -> Tensor:
    r"""Closed form :math:`\log Z` of the periodic Ising chain (transfer matrix):
    :math:`Z = \lambda_+^n + \lambda_-^n`,
    :math:`\lambda_\pm = e^{\beta J}\cosh\beta h \pm
    \sqrt{e^{2\beta J}\sinh^2\beta h + e^{-2\beta J}}`; at h = 0,
    :math:`Z = (2\cosh\beta J)^n + (2\sinh\beta J)^n`. Float64 scalar.

    >>> float(ising_chain_log_partition(2, J=0.0))   # 4 free configurations
    1.3862943611198906
    """
    fn = "ising_chain_log_partition"
    n = _checks.integer(n, "n", fn, low=1)
    beta = _checks.number(beta, "beta", fn, low=0.0)
    bj = torch.tensor(beta * _checks.number(J, "J", fn), dtype=torch.float64)
    bh = torch.tensor(beta * _checks.number(h, "h", fn), dtype=torch.float64)
    root = torch.sqrt(torch.exp(2 * bj) * torch.sinh(bh) ** 2 + torch.exp(-2 * bj))
    lp = torch.exp(bj) * torch.cosh(bh) + root
    lm = torch.exp(bj) * torch.cosh(bh) - root
    # Z = λ+^n (1 + (λ-/λ+)^n); λ+ > |λ-| > ... and λ- may be negative (antiferromagnet)
    ratio = lm / lp
    return n * torch.log(lp) + torch.log1p(ratio**n)


def onsager_magnetization(beta: float, J: float = 1.0) -> float:
    r"""Spontaneous magnetisation of the infinite square-lattice Ising model at h = 0
    (Onsager / Yang): :math:`M = (1 - \sinh^{-4}(2\beta J))^{1/8}` below the critical
    temperature, 0 above.

    >>> onsager_magnetization(1 / 2.0) > 0.9, onsager_magnetization(1 / 2.5)
    (True, 0.0)
    """
    fn = "onsager_magnetization"
    bj = _checks.number(beta, "beta", fn, low=0.0) * _checks.number(J, "J", fn, low=0.0)
    s = math.sinh(2 * bj)
    if s <= 1.0:
        return 0.0
    return (1.0 - s**-4) ** 0.125
