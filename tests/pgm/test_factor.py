"""DiscreteFactor: product, marginalisation, reduction and normalisation against explicit
loops over the factor's entries (the formulas, written out), in linear and log space; state
names; errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mldl.pgm import DiscreteFactor

F64 = torch.float64
CARDS = {"a": 2, "b": 3, "c": 2, "d": 4}

_EXAMPLES = min(40, settings.default.max_examples)


def _entry(values: torch.Tensor, scope: tuple[str, ...], x: dict[str, int]) -> float:
    """``values`` at the assignment ``x`` (a dict covering ``scope``)."""
    return float(values[tuple(x[v] for v in scope)])


def _assignments(scope):
    for states in itertools.product(*(range(CARDS[v]) for v in scope)):
        yield dict(zip(scope, states, strict=True))


@st.composite
def factors(draw, *, positive: bool = False):
    scope = tuple(draw(st.permutations(list(CARDS)))[: draw(st.integers(0, len(CARDS)))])
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    values = torch.rand([CARDS[v] for v in scope], generator=g, dtype=F64)
    if not positive:
        values = torch.where(values < 0.2, torch.zeros_like(values), values)
    return scope, values


# --------------------------------------------------------------------------- linear space


@settings(max_examples=_EXAMPLES)
@given(factors(), factors())
def test_product_is_the_pointwise_product_over_the_union_scope(f1, f2):
    (s1, v1), (s2, v2) = f1, f2
    h = DiscreteFactor(s1, v1) * DiscreteFactor(s2, v2)
    union = s1 + tuple(v for v in s2 if v not in s1)
    assert h.variables == union
    assert h.log is False
    assert tuple(h.values.shape) == tuple(CARDS[v] for v in union)
    for x in _assignments(union):
        want = _entry(v1, s1, x) * _entry(v2, s2, x)
        assert _entry(h.values, union, x) == pytest.approx(want, rel=1e-12, abs=1e-300)


@settings(max_examples=_EXAMPLES)
@given(factors(), st.data())
def test_marginalize_sums_out_the_variables(f, data):
    scope, values = f
    out = data.draw(st.lists(st.sampled_from(scope), unique=True)) if scope else []
    m = DiscreteFactor(scope, values).marginalize(out)
    keep = tuple(v for v in scope if v not in out)
    assert m.variables == keep
    for y in _assignments(keep):
        want = sum(_entry(values, scope, {**y, **z}) for z in _assignments(tuple(out)))
        assert _entry(m.values, keep, y) == pytest.approx(want, rel=1e-12, abs=1e-15)


@settings(max_examples=_EXAMPLES)
@given(factors(), st.data())
def test_reduce_fixes_the_observed_states(f, data):
    scope, values = f
    observed = data.draw(st.lists(st.sampled_from(list(CARDS)), unique=True))
    evidence = {v: data.draw(st.integers(0, CARDS[v] - 1)) for v in observed}
    r = DiscreteFactor(scope, values).reduce(evidence)
    keep = tuple(v for v in scope if v not in evidence)  # others are ignored
    assert r.variables == keep
    for y in _assignments(keep):
        x = {**y, **{v: s for v, s in evidence.items() if v in scope}}
        assert _entry(r.values, keep, y) == _entry(values, scope, x)


@settings(max_examples=_EXAMPLES)
@given(factors(positive=True))
def test_normalize_divides_by_the_total(f):
    scope, values = f
    n = DiscreteFactor(scope, values).normalize()
    total = sum(_entry(values, scope, x) for x in _assignments(scope))
    for x in _assignments(scope):
        assert _entry(n.values, scope, x) == pytest.approx(_entry(values, scope, x) / total)
    assert float(n.values.sum()) == pytest.approx(1.0, abs=1e-12)


def test_hand_computed_example():
    f = DiscreteFactor(["a", "b"], torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=F64))
    g = DiscreteFactor(["b"], torch.tensor([2.0, 1.0], dtype=F64))
    h = f * g
    assert torch.allclose(h.values, torch.tensor([[0.2, 0.2], [0.6, 0.4]], dtype=F64))
    assert torch.allclose(h.marginalize(["b"]).values, torch.tensor([0.4, 1.0], dtype=F64))
    assert torch.allclose(h.marginalize(["a"]).values, torch.tensor([0.8, 0.6], dtype=F64))
    assert torch.allclose(h.reduce({"a": 1}).values, torch.tensor([0.6, 0.4], dtype=F64))
    assert torch.allclose(h.normalize().values, h.values / 1.4)
    total = h.marginalize(["a", "b"])
    assert total.variables == ()
    assert float(total.values) == pytest.approx(1.4)


def test_product_with_reversed_scopes_aligns_axes():
    f = DiscreteFactor(["a", "b"], torch.arange(6, dtype=F64).reshape(2, 3) + 1)
    g = DiscreteFactor(["b", "a"], torch.arange(6, dtype=F64).reshape(3, 2) + 10)
    h = f * g
    assert h.variables == ("a", "b")
    for i in range(2):
        for j in range(3):
            assert float(h.values[i, j]) == float(f.values[i, j] * g.values[j, i])
    h2 = g * f
    assert h2.variables == ("b", "a")
    assert torch.equal(h2.values, h.values.T)


# ------------------------------------------------------------------------------ log space


@settings(max_examples=_EXAMPLES)
@given(factors(positive=True), factors(positive=True))
def test_log_product_is_a_sum(f1, f2):
    (s1, v1), (s2, v2) = f1, f2
    h = DiscreteFactor(s1, v1.log(), log=True) * DiscreteFactor(s2, v2.log(), log=True)
    union = s1 + tuple(v for v in s2 if v not in s1)
    assert h.log is True and h.variables == union
    for x in _assignments(union):
        want = math.log(_entry(v1, s1, x)) + math.log(_entry(v2, s2, x))
        assert _entry(h.values, union, x) == pytest.approx(want, rel=1e-12, abs=1e-12)


@settings(max_examples=_EXAMPLES)
@given(factors(positive=True), st.data())
def test_log_marginalize_is_logsumexp(f, data):
    scope, values = f
    out = data.draw(st.lists(st.sampled_from(scope), unique=True)) if scope else []
    logv = values.log() * 30  # large magnitudes: a naive exp would lose precision
    m = DiscreteFactor(scope, logv, log=True).marginalize(out)
    keep = tuple(v for v in scope if v not in out)
    assert m.log is True and m.variables == keep
    for y in _assignments(keep):
        terms = [_entry(logv, scope, {**y, **z}) for z in _assignments(tuple(out))]
        top = max(terms)
        want = top + math.log(sum(math.exp(t - top) for t in terms))
        assert _entry(m.values, keep, y) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_log_normalize_and_conversions():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=F64)
    f = DiscreteFactor(["a", "b"], v)
    lf = f.to_log()
    assert lf.log is True and torch.allclose(lf.values, v.log())
    assert lf.to_log() is lf and f.to_linear() is f
    assert torch.allclose(lf.to_linear().values, v)
    n = lf.normalize()
    assert n.log is True
    assert torch.allclose(n.values, (v / 21).log())
    assert torch.allclose(n.to_linear().values, v / 21)
    # reduce works the same way on log-potentials
    assert torch.allclose(lf.reduce({"b": 2}).values, torch.tensor([3.0, 6.0], dtype=F64).log())


# ---------------------------------------------------------------------------- state names


def test_state_names_default_and_given():
    f = DiscreteFactor(["a", "b"], torch.ones(2, 3), {"b": ["x", "y", "z"]})
    assert f.state_names == {"a": ["0", "1"], "b": ["x", "y", "z"]}
    assert f.cardinality == {"a": 2, "b": 3}
    assert "a:2" in repr(f) and "b:3" in repr(f)


def test_state_names_follow_the_operations():
    f = DiscreteFactor(
        ["a", "b"],
        torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=F64),
        {"a": ["lo", "hi"], "b": ["x", "y", "z"]},
    )
    g = DiscreteFactor(["b", "c"], torch.ones(3, 2, dtype=F64), {"c": ["no", "yes"]})
    h = f * g
    assert h.state_names == {"a": ["lo", "hi"], "b": ["x", "y", "z"], "c": ["no", "yes"]}
    assert h.marginalize(["b"]).state_names == {"a": ["lo", "hi"], "c": ["no", "yes"]}
    r = f.reduce({"b": "z"})
    assert r.state_names == {"a": ["lo", "hi"]}
    assert torch.equal(r.values, torch.tensor([0.3, 0.6], dtype=F64))
    assert torch.equal(f.reduce({"a": "hi", "b": "x"}).values, torch.tensor(0.4, dtype=F64))
    assert torch.equal(f.reduce({"a": "hi"}).values, f.reduce({"a": 1}).values)


# --------------------------------------------------------------------------------- errors


def test_constructor_errors():
    with pytest.raises(ValueError, match="repeat"):
        DiscreteFactor(["a", "a"], torch.ones(2, 2))
    with pytest.raises(TypeError, match="tensor"):
        DiscreteFactor(["a"], [0.5, 0.5])
    with pytest.raises(ValueError, match="one axis per variable"):
        DiscreteFactor(["a", "b"], torch.ones(2))
    with pytest.raises(ValueError, match="names"):
        DiscreteFactor(["a"], torch.ones(2), {"a": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="at most"):
        DiscreteFactor([f"v{i}" for i in range(60)], torch.ones([1] * 60))


def test_operation_errors():
    f = DiscreteFactor(["a", "b"], torch.ones(2, 3), {"b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="log space"):
        f * f.to_log()
    with pytest.raises(ValueError, match="states"):
        f * DiscreteFactor(["b"], torch.ones(4))
    with pytest.raises(ValueError, match="not in scope"):
        f.marginalize(["c"])
    with pytest.raises(ValueError, match="no state 'w'"):
        f.reduce({"b": "w"})
    with pytest.raises(ValueError, match="outside"):
        f.reduce({"b": 3})
    with pytest.raises(ValueError, match="outside"):
        f.reduce({"a": -1})


def test_marginalize_a_repeated_name_raises_value_error():
    # Fixed bug: marginalize(["a", "a"]) reaches torch.sum with a repeated dim and
    # raises RuntimeError("dim 0 appears multiple times") instead of a ValueError naming
    # the argument.
    f = DiscreteFactor(["a", "b"], torch.ones(2, 3))
    with pytest.raises(ValueError):
        f.marginalize(["a", "a"])


def test_reduce_refuses_a_non_integer_state():
    # Fixed bug: reduce({"a": 1.5}) truncates the float to state 1 with int() instead of
    # refusing it (BayesianNetwork evidence refuses floats with a TypeError).
    f = DiscreteFactor(["a", "b"], torch.ones(2, 3))
    with pytest.raises((TypeError, ValueError)):
        f.reduce({"a": 1.5})
