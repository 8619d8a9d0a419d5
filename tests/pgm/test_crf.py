"""LinearChainCRF against brute-force enumeration of every tag sequence (log Z, NLL, unary and
pairwise marginals, Viterbi, k-best), with lengths, masks, both layouts and constraints;
against pytorch-crf (values, gradients, decoded paths); gradcheck; tag-scheme constraints in
decoding and training; the float64-underflow fallback; TorchScript; input errors. Tests
marked ``Fixed bug`` are regression tests for bugs these tests found in ``mldl.pgm.crf``."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from mldl.pgm import LinearChainCRF, allowed_transitions, viterbi_decode

F64 = torch.float64
INF = math.inf
_EXAMPLES = min(40, settings.default.max_examples)


# -------------------------------------------------------------------- the brute force


def _all_paths(k: int, length: int) -> torch.Tensor:
    """Every tag sequence of the length, (K**length, length)."""
    rows = list(itertools.product(range(k), repeat=length))
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), length)


def _brute(emissions, length, trans, start, end, allowed, ok_start, ok_end):
    """Every path of one sequence (emissions (T, K), the first ``length`` steps used) and its
    score under the raw parameters, -inf where a constraint forbids it. The constraints are
    applied here, independently of the library's masking."""
    k = emissions.shape[1]
    paths = _all_paths(k, length)
    if length == 0:
        return paths, torch.zeros(1, dtype=F64)
    steps = torch.arange(length)
    score = emissions[steps, paths].sum(1) + start[paths[:, 0]] + end[paths[:, -1]]
    score = score + trans[paths[:, :-1], paths[:, 1:]].sum(1)
    ok = ok_start[paths[:, 0]] & ok_end[paths[:, -1]] & allowed[paths[:, :-1], paths[:, 1:]].all(1)
    return paths, torch.where(ok, score, torch.full_like(score, -INF))


class Case:
    """A random CRF problem (float64) and the brute-force answers for every sequence."""

    def __init__(self, b, t, k, lengths, constraints, batch_first, use_mask, seed):
        g = torch.Generator().manual_seed(seed)
        self.b, self.t, self.k, self.batch_first = b, t, k, batch_first
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.crf = LinearChainCRF(k, batch_first=batch_first, constraints=constraints).double()
        with torch.no_grad():
            for p in self.crf.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
        self.em = torch.randn(b, t, k, generator=g, dtype=F64) * 2  # (B, T, K)
        self.mask = torch.arange(t) < self.lengths[:, None]
        self.use_mask = use_mask
        allowed, ok_start, ok_end = self.crf.allowed, self.crf.allowed_start, self.crf.allowed_end
        raw = (self.crf.transitions, self.crf.start_transitions, self.crf.end_transitions)
        tr, s, e = (x.detach() for x in raw)
        self.brute = [
            _brute(self.em[i], int(self.lengths[i]), tr, s, e, allowed, ok_start, ok_end)
            for i in range(b)
        ]
        # a gold path per sequence, drawn among the allowed ones; padding -100 or random
        tags = torch.randint(0, k, (b, t), generator=g)
        for i, (paths, scores) in enumerate(self.brute):
            feasible = torch.isfinite(scores).nonzero().flatten()
            pick = feasible[torch.randint(len(feasible), (1,), generator=g)].item()
            tags[i, : paths.shape[1]] = paths[pick]
        pad = -100 if seed % 2 else 0
        self.tags = torch.where(self.mask, tags, torch.full_like(tags, pad))
        self.gold_scores = torch.stack(
            [sc[(p == tags[i, : p.shape[1]]).all(1)][0] for i, (p, sc) in enumerate(self.brute)]
        )

    # inputs in the module's layout
    def inputs(self):
        em, tags, mask = self.em, self.tags, self.mask
        if not self.batch_first:
            em, tags, mask = em.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)
        kw = {"mask": mask} if self.use_mask else {"lengths": self.lengths}
        return em, tags, kw

    def log_z(self):
        return torch.stack([torch.logsumexp(sc, 0) for _, sc in self.brute])

    def batch_major(self, x, steps_dim=1):
        """A (T, B, ...) output in (B, T, ...) layout when batch_first=False."""
        return x if self.batch_first else x.transpose(0, steps_dim)


def _constraints(draw, k):
    kind = draw(st.sampled_from(["none", "random", "bio"] if k == 3 else ["none", "random"]))
    if kind == "none":
        return None
    if kind == "bio":
        labels = draw(st.permutations(["O", "B-X", "I-X"]))
        return allowed_transitions("BIO", labels)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    allowed = torch.rand(k, k, generator=g) < 0.6
    ok_start, ok_end = torch.rand(k, generator=g) < 0.6, torch.rand(k, generator=g) < 0.6
    keep = draw(st.integers(0, k - 1))  # one tag that may repeat, start and end: feasible
    allowed[keep, keep] = ok_start[keep] = ok_end[keep] = True
    return allowed, ok_start, ok_end


@st.composite
def cases(draw, min_length=0):
    k = draw(st.integers(1, 4))
    t = draw(st.integers(1, 5))
    b = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(min_length, t), min_size=b, max_size=b))
    return Case(
        b,
        t,
        k,
        lengths,
        _constraints(draw, k),
        draw(st.booleans()),
        draw(st.booleans()),
        draw(st.integers(0, 2**31 - 1)),
    )


# ------------------------------------------------------------- against brute force


@settings(max_examples=_EXAMPLES)
@given(cases())
def test_log_partition_and_nll_match_enumeration(case):
    em, tags, kw = case.inputs()
    log_z = case.log_z()
    torch.testing.assert_close(case.crf.log_partition(em, **kw), log_z)
    nll = log_z - case.gold_scores
    torch.testing.assert_close(case.crf.score(em, tags, **kw), case.gold_scores)
    torch.testing.assert_close(case.crf(em, tags, reduction="none", **kw), nll)
    torch.testing.assert_close(case.crf(em, tags, reduction="sum", **kw), nll.sum())
    torch.testing.assert_close(case.crf(em, tags, reduction="mean", **kw), nll.mean())
    tokens = case.lengths.sum()
    got = case.crf(em, tags, reduction="token_mean", **kw)
    if tokens == 0:
        assert torch.isnan(got)
    else:
        torch.testing.assert_close(got, nll.sum() / tokens)
    # a zero-length sequence: log Z = 0, loss 0
    empty = case.lengths == 0
    assert (case.crf(em, tags, reduction="none", **kw)[empty] == 0).all()


@settings(max_examples=_EXAMPLES)
@given(cases())
def test_unary_and_pairwise_marginals_match_enumeration(case):
    em, _, kw = case.inputs()
    unary, pairwise = case.crf.marginals(em, **kw)
    unary = case.batch_major(unary)
    pairwise = case.batch_major(pairwise)
    b, t, k = case.b, case.t, case.k
    assert unary.shape == (b, t, k) and pairwise.shape == (b, t - 1, k, k)
    want_u = torch.zeros(b, t, k, dtype=F64)
    want_p = torch.zeros(b, max(t - 1, 0), k, k, dtype=F64)
    for i, (paths, scores) in enumerate(case.brute):
        prob = torch.exp(scores - torch.logsumexp(scores, 0))
        for s in range(paths.shape[1]):
            want_u[i, s].index_add_(0, paths[:, s], prob)
            if s > 0:
                flat = paths[:, s - 1] * k + paths[:, s]
                want_p[i, s - 1].view(-1).index_add_(0, flat, prob)
    torch.testing.assert_close(unary, want_u)
    torch.testing.assert_close(pairwise, want_p)


@settings(max_examples=_EXAMPLES)
@given(cases())
def test_marginals_are_the_gradient_of_log_z(case):
    em, _, kw = case.inputs()
    em = em.clone().requires_grad_(True)
    case.crf.zero_grad()
    case.crf.log_partition(em, **kw).sum().backward()
    unary, pairwise = case.crf.marginals(em.detach(), **kw)
    torch.testing.assert_close(em.grad, unary)
    pairwise = case.batch_major(pairwise)
    grad_t = case.crf.transitions.grad
    torch.testing.assert_close(grad_t, pairwise.sum((0, 1)) * case.crf.allowed)
    unary = case.batch_major(unary)
    live = case.lengths > 0
    first = unary[live, 0].sum(0)
    last = unary[torch.arange(case.b), (case.lengths - 1).clamp_min(0)][live].sum(0)
    torch.testing.assert_close(case.crf.start_transitions.grad, first)
    torch.testing.assert_close(case.crf.end_transitions.grad, last)


@settings(max_examples=_EXAMPLES)
@given(cases())
def test_viterbi_matches_enumeration(case):
    em, _, kw = case.inputs()
    paths, scores = case.crf.decode(em, **kw)
    paths = case.batch_major(paths)
    assert paths.shape == (case.b, case.t) and paths.dtype == torch.long
    for i, (all_paths, all_scores) in enumerate(case.brute):
        n = int(case.lengths[i])
        best = int(all_scores.argmax())
        assert paths[i, :n].tolist() == all_paths[best].tolist()
        assert (paths[i, n:] == -1).all()
        torch.testing.assert_close(scores[i], all_scores[best])


@settings(max_examples=_EXAMPLES)
@given(cases(), st.integers(1, 6))
def test_topk_matches_enumeration(case, k):
    em, _, kw = case.inputs()
    paths, scores = case.crf.decode_topk(em, k, **kw)
    if not case.batch_first:
        assert paths.shape == (case.t, case.b, k)
        paths = paths.permute(1, 2, 0)
    assert paths.shape == (case.b, k, case.t) and scores.shape == (case.b, k)
    for i, (all_paths, all_scores) in enumerate(case.brute):
        n = int(case.lengths[i])
        ordered = all_scores.sort(descending=True).values
        want = torch.full((k,), -INF, dtype=F64)
        want[: min(k, len(ordered))] = ordered[:k]
        torch.testing.assert_close(scores[i], want)
        seen = set()
        for r in range(k):
            path = paths[i, r]
            assert (path[n:] == -1).all()
            if not math.isfinite(want[r]):
                assert (path == -1).all()
                continue
            key = tuple(path[:n].tolist())
            assert key not in seen
            seen.add(key)
            row = (all_paths == path[:n]).all(1).nonzero().flatten()
            torch.testing.assert_close(all_scores[row[0]], scores[i, r])
    # the best of the k is Viterbi's
    _, best_score = case.crf.decode(em, **kw)
    torch.testing.assert_close(scores[:, 0], best_score)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@settings(max_examples=_EXAMPLES)
@given(cases())
def test_torchscript_viterbi_matches_eager_and_enumeration(case):
    scripted = torch.jit.script(viterbi_decode)
    trans, start, end = (x.detach() for x in case.crf._scores())
    got = scripted(case.em, case.lengths, trans, start, end)
    eager = viterbi_decode(case.em, case.lengths, trans, start, end)
    torch.testing.assert_close(got, eager)
    best = torch.stack([sc.max() for _, sc in case.brute])
    torch.testing.assert_close(got[1], best)


# ---------------------------------------------------------------- against pytorch-crf


def _pair(k, batch_first, dtype, seed):
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(seed)
    ours = LinearChainCRF(k, batch_first=batch_first).to(dtype)
    theirs = torchcrf.CRF(k, batch_first=batch_first).to(dtype)
    with torch.no_grad():
        for name in ("transitions", "start_transitions", "end_transitions"):
            getattr(ours, name).copy_(torch.randn(getattr(ours, name).shape) * 0.5)
            getattr(theirs, name).copy_(getattr(ours, name))
    return ours, theirs


@settings(max_examples=_EXAMPLES)
@given(
    st.integers(1, 6),
    st.integers(1, 12),
    st.integers(1, 5),
    st.booleans(),
    st.sampled_from([F64, torch.float32]),
    st.integers(0, 2**31 - 1),
)
def test_equals_pytorch_crf(k, t, b, batch_first, dtype, seed):
    ours, theirs = _pair(k, batch_first, dtype, seed)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)  # pytorch-crf: first step on
    em = torch.randn(b, t, k, generator=g, dtype=dtype) * 3
    tags = torch.randint(0, k, (b, t), generator=g)
    mask = torch.arange(t) < lengths[:, None]
    if not batch_first:
        em, tags, mask = em.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)
    tol = {"rtol": 1e-10, "atol": 1e-9} if dtype == F64 else {"rtol": 2e-5, "atol": 1e-4}
    for reduction in ("none", "sum", "mean", "token_mean"):
        em1 = em.clone().requires_grad_(True)
        em2 = em.clone().requires_grad_(True)
        mine = ours(em1, tags, mask, reduction=reduction)
        theirs_nll = -theirs(em2, tags, mask, reduction=reduction)
        torch.testing.assert_close(mine, theirs_nll, **tol)
        mine.sum().backward()
        theirs_nll.sum().backward()
        torch.testing.assert_close(em1.grad, em2.grad, **tol)
    for name in ("transitions", "start_transitions", "end_transitions"):
        mine, other = getattr(ours, name), getattr(theirs, name)
        # with T = 1 pytorch-crf never touches its transitions: no gradient at all
        other_grad = torch.zeros_like(other) if other.grad is None else other.grad
        torch.testing.assert_close(mine.grad, other_grad, **tol)
    paths, _ = ours.decode(em, mask)
    if not batch_first:
        paths = paths.transpose(0, 1)
    expected = theirs.decode(em, mask)
    for i in range(b):
        n = int(lengths[i])
        assert paths[i, :n].tolist() == expected[i]
        assert (paths[i, n:] == -1).all()


# pytorch-crf (the anchor, not ours) still builds a uint8 mask for torch.where
@pytest.mark.filterwarnings("ignore:where received a uint8 condition tensor:UserWarning")
def test_pytorch_crf_default_layout_and_reduction():
    # pytorch-crf's defaults are batch_first=False and reduction='sum'; ours True and 'mean'
    ours, theirs = _pair(5, False, F64, 3)
    em, tags = torch.randn(7, 4, 5, dtype=F64), torch.randint(0, 5, (7, 4))
    torch.testing.assert_close(ours(em, tags, reduction="sum"), -theirs(em, tags))
    torch.testing.assert_close(ours(em, tags), -theirs(em, tags) / 4)


# -------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("reduction", ["none", "token_mean"])
def test_gradcheck_nll(constrained, reduction):
    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    constraints = allowed_transitions("BIO", labels) if constrained else None
    crf = LinearChainCRF(5, constraints=constraints).double()
    g = torch.Generator().manual_seed(1)
    em = torch.randn(4, 6, 5, generator=g, dtype=F64)
    lengths = torch.tensor([6, 3, 0, 1])
    tags, _ = crf.decode(em, lengths=lengths)  # allowed paths, -1 beyond the lengths
    params = tuple(
        torch.randn(p.shape, generator=g, dtype=F64).requires_grad_(True)
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions)
    )

    def nll(em, trans, start, end):
        state = {"transitions": trans, "start_transitions": start, "end_transitions": end}
        kwargs = {"lengths": lengths, "reduction": reduction}
        return functional_call(crf, state, (em, tags), kwargs)

    inputs = (em.requires_grad_(True), *params)
    assert torch.isfinite(nll(*inputs)).all()
    assert torch.autograd.gradcheck(nll, inputs)


def test_second_derivatives_are_right_or_refused():
    # Fixed bug: _ForwardBackward.backward computes the marginals from tensors saved
    # without a graph, so a double backward (a gradient penalty, a Hessian-vector product)
    # silently treats them as constants: gradgradcheck fails with a Jacobian mismatch
    # instead of the Function refusing (torch.autograd.function.once_differentiable) or
    # being twice differentiable.
    crf = LinearChainCRF(3).double()
    em = torch.randn(2, 4, 3, dtype=F64, requires_grad=True)
    tags = torch.randint(0, 3, (2, 4))
    try:
        ok = torch.autograd.gradgradcheck(
            lambda e: crf(e, tags, reduction="sum"), (em,), raise_exception=False
        )
    except RuntimeError:
        return  # refused: fine
    assert ok


# ------------------------------------------------------------------------ constraints

SCHEMES = {"BIO": "BI", "IOBES": "BIES", "BIOUL": "BILU"}


@st.composite
def labelled(draw):
    scheme = draw(st.sampled_from(sorted(SCHEMES)))
    kinds = ["PER", "LOC"][: draw(st.integers(1, 2))]
    labels = ["O"] + [f"{p}-{kind}" for kind in kinds for p in SCHEMES[scheme]]
    return scheme, draw(st.permutations(labels))


def _adversarial(scheme, labels, seed):
    """A constrained CRF whose raw scores favour exactly the forbidden moves."""
    constraints = allowed_transitions(scheme, labels)
    crf = LinearChainCRF(len(labels), constraints=constraints)
    allowed, ok_start, ok_end = constraints
    with torch.no_grad():
        crf.transitions.copy_(torch.where(allowed, -5.0, 5.0))
        crf.start_transitions.copy_(torch.where(ok_start, -5.0, 5.0))
        crf.end_transitions.copy_(torch.where(ok_end, -5.0, 5.0))
    g = torch.Generator().manual_seed(seed)
    return crf, constraints, g


def _path_allowed(path, constraints):
    allowed, ok_start, ok_end = constraints
    if not path:
        return True
    moves = all(bool(allowed[a, b]) for a, b in itertools.pairwise(path))
    return moves and bool(ok_start[path[0]]) and bool(ok_end[path[-1]])


@settings(max_examples=_EXAMPLES)
@given(labelled(), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_constrained_decoding_never_takes_a_forbidden_move(scheme_labels, t, seed):
    scheme, labels = scheme_labels
    crf, constraints, g = _adversarial(scheme, labels, seed)
    em = torch.randn(4, t, len(labels), generator=g) * 4
    lengths = torch.randint(0, t + 1, (4,), generator=g)
    paths, scores = crf.decode(em, lengths=lengths)
    assert torch.isfinite(scores).all()
    for i in range(4):
        n = int(lengths[i])
        assert _path_allowed(paths[i, :n].tolist(), constraints), (labels, paths[i])
    top, top_scores = crf.decode_topk(em, 3, lengths=lengths)
    for i in range(4):
        n = int(lengths[i])
        for r in range(3):
            if torch.isfinite(top_scores[i, r]):
                assert _path_allowed(top[i, r, :n].tolist(), constraints)
    # training with the same constraints: allowed gold paths have finite losses and gradients
    em.requires_grad_(True)
    loss = crf(em, paths, lengths=lengths, reduction="none")
    assert torch.isfinite(loss).all() and (loss >= -1e-4).all()
    loss.sum().backward()
    for grad in (em.grad, *(p.grad for p in crf.parameters())):
        assert torch.isfinite(grad).all()
    # forbidden moves get no gradient: they have no probability
    assert (crf.transitions.grad[~constraints[0]] == 0).all()


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_a_forbidden_gold_path_has_infinite_loss(scheme):
    labels = ["O"] + [f"{p}-PER" for p in SCHEMES[scheme]]
    constraints = allowed_transitions(scheme, labels)
    allowed, ok_start, ok_end = constraints
    crf = LinearChainCRF(len(labels), constraints=constraints)
    inside = labels.index("I-PER")
    em = torch.randn(3, 4, len(labels))
    o = labels.index("O")
    tags = torch.tensor(
        [
            [o, o, o, o],  # allowed
            [inside, inside, o, o],  # starts inside an entity: a forbidden start
            [o, inside, o, o],  # O -> I: a forbidden move
        ]
    )
    assert not ok_start[inside] and not allowed[o, inside]
    loss = crf(em, tags, reduction="none")
    assert torch.isfinite(loss[0])
    assert loss[1] == INF and loss[2] == INF
    assert crf(em, tags, reduction="sum") == INF
    # an open entity at the end of a sequence: forbidden where the scheme closes entities
    begin = labels.index("B-PER")
    last = torch.tensor([[o, o, o, begin]])
    want = INF if not ok_end[begin] else None
    got = crf(em[:1], last, reduction="none")
    if want is None:
        assert torch.isfinite(got).all()
    else:
        assert got[0] == INF
    # the padding beyond a length may hold anything, forbidden or not
    short = crf(em[1:2], tags[1:2], lengths=torch.tensor([0]), reduction="none")
    assert short.item() == 0.0


def test_allowed_transitions_tables():
    allowed, start, end = allowed_transitions("BIO", ["O", "B-A", "I-A", "B-B", "I-B"])
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()
    assert allowed[:, 2].tolist() == [False, True, True, False, False]  # into I-A
    allowed, start, end = allowed_transitions("IOBES", ["O", "B-A", "I-A", "E-A", "S-A"])
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert allowed[1].tolist() == [False, False, True, True, False]  # after B-A: I-A, E-A
    assert allowed[3].tolist() == [True, True, False, False, True]  # after E-A
    # BIOUL is IOBES with U = S and L = E
    bioul = allowed_transitions("BIOUL", ["O", "B-A", "I-A", "L-A", "U-A"])
    for a, b in zip(bioul, (allowed, start, end), strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- numerical range


def _log_space_reference(em, crf, lengths):
    """The forward algorithm in log space, float64, with autograd."""
    tr, s, e = (x.double() for x in crf._scores())
    em = em.double()
    alpha = s + em[:, 0]
    for t in range(1, em.shape[1]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + tr, 1) + em[:, t]
        alpha = torch.where((t < lengths)[:, None], nxt, alpha)
    return torch.where(lengths > 0, torch.logsumexp(alpha + e, 1), torch.zeros(len(lengths)))


def test_float64_underflow_falls_back_to_log_space():
    # BIO, I-X never starts: a huge emission on I-X at step 0 makes every reachable tag's
    # scaled probability exp(-1e4) = 0 in float64; the affected rows are recomputed in
    # log space and give the exact, finite log Z (and gradient).
    labels = ["O", "B-X", "I-X"]
    crf = LinearChainCRF(3, constraints=allowed_transitions("BIO", labels))
    g = torch.Generator().manual_seed(0)
    em = torch.randn(4, 6, 3, generator=g)
    em[0, 0, 2] = 1e4  # unreachable at step 0
    em[1, 3, 1:] = -1e4  # B-X, I-X (nearly) impossible at step 3, so is I-X at step 4
    em[1, 4, 2] = 1e4
    em[2] *= 100  # a wide range without underflow
    lengths = torch.tensor([6, 5, 6, 2])
    em.requires_grad_(True)
    log_z = crf.log_partition(em, lengths=lengths)
    assert log_z.dtype == torch.float32 and torch.isfinite(log_z).all()
    em64 = em.detach().double().requires_grad_(True)
    want = _log_space_reference(em64, crf, lengths)
    torch.testing.assert_close(log_z.double(), want, rtol=1e-6, atol=1e-3)
    (grad,) = torch.autograd.grad(log_z.sum(), em)
    (want_grad,) = torch.autograd.grad(want.sum(), em64)
    assert torch.isfinite(grad).all()
    # float32 log space at scores of 1e4: probabilities to about 1e-3
    torch.testing.assert_close(grad.double(), want_grad, rtol=0, atol=2e-3)
    # the loss of an allowed path is finite as well
    tags = torch.zeros(4, 6, dtype=torch.long)
    assert torch.isfinite(crf(em, tags, lengths=lengths, reduction="none")).all()


@pytest.mark.parametrize("gap", [700.0, 730.0, 740.0, 744.0, 745.0, 2000.0])
def test_log_z_is_exact_near_the_float64_underflow_threshold(gap):
    # Fixed bug: the fallback only catches log Z = -inf. When every reachable tag's scaled
    # probability is exp(-gap) with 708 < gap < 745.1 (a subnormal float64), it loses most
    # of its bits without reaching 0: log Z is off by 0.002 at gap 740, 0.26 at 744 and 0.57
    # at 745, in float32 and float64 alike (exact at 700 and again past 746, where the
    # fallback takes over).
    crf = LinearChainCRF(3, constraints=allowed_transitions("BIO", ["O", "B-X", "I-X"]))
    for dtype in (torch.float32, F64):
        crf = crf.to(dtype)
        em = torch.zeros(1, 3, 3, dtype=dtype)
        em[0, 0, 2] = gap  # I-X, which may not start a sequence
        got = crf.log_partition(em).double()
        want = _log_space_reference(em, crf, torch.tensor([3]))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-4)


# ------------------------------------------------------------------------------ errors


def _inputs(b=2, t=4, k=3):
    return torch.randn(b, t, k), torch.zeros(b, t, dtype=torch.long)


def test_padding_tags_beyond_the_lengths_are_ignored():
    crf = LinearChainCRF(3)
    em, _ = _inputs()
    tags = torch.tensor([[0, 1, -100, -100], [2, 2, 1, 0]])
    clean = torch.tensor([[0, 1, 0, 0], [2, 2, 1, 0]])
    lengths = torch.tensor([2, 4])
    mask = torch.arange(4) < lengths[:, None]
    want = crf(em, clean, lengths=lengths, reduction="none")
    torch.testing.assert_close(crf(em, tags, lengths=lengths, reduction="none"), want)
    torch.testing.assert_close(crf(em, tags, mask, reduction="none"), want)
    torch.testing.assert_close(crf(em, tags + 999 * ~mask, mask, reduction="none"), want)
    # a first step masked off (pytorch-crf refuses this): an empty sequence
    mask[0] = False
    assert crf(em, tags, mask, reduction="none")[0] == 0.0


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        (torch.tensor([[0, 3, 0, 0], [0, 0, 0, 0]]), r"tags: expected tag indices in \[0, 2\]"),
        (torch.tensor([[0, 0, 0, 0], [0, 0, -1, 0]]), r"got -1 at \(1, 2\)"),
        (torch.tensor([[0, 0, 0, 0], [0, 0, -100, 0]]), "within each sequence"),
    ],
)
def test_tags_out_of_range_within_the_lengths_raise(tags, match):
    crf = LinearChainCRF(3)
    em, _ = _inputs()
    with pytest.raises(ValueError, match=match):
        crf(em, tags)
    with pytest.raises(ValueError, match=match):
        crf.score(em, tags, lengths=torch.tensor([4, 4]))


_HOLE = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]])
_LATE = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
_ONES = torch.ones(2, 4, dtype=torch.bool)
BAD = {
    # masks with holes (not a prefix)
    "mask hole": (ValueError, "row 0 has a hole", lambda c, e, t: c(e, t, _HOLE)),
    "mask hole decode": (ValueError, "row 1 has a hole", lambda c, e, t: c.decode(e, _LATE)),
    # shapes, K
    "mask shape": (ValueError, r"mask: expected shape \(2, 4\)", lambda c, e, t: c(e, t, _ONES.T)),
    "tags shape": (ValueError, r"tags: expected shape \(2, 4\)", lambda c, e, t: c(e, t[:, :3])),
    "emissions 2-D": (ValueError, r"expected \(B, T, K\) with K=3", lambda c, e, t: c(e[0], t[0])),
    "wrong K": (
        ValueError,
        r"expected \(B, T, K\) with K=3, got shape \(2, 4, 5\)",
        lambda c, e, t: c(torch.randn(2, 4, 5), t),
    ),
    "wrong K decode": (ValueError, "with K=3", lambda c, e, t: c.decode(torch.randn(2, 4, 2))),
    "wrong K marginals": (
        ValueError,
        "with K=3",
        lambda c, e, t: c.marginals(torch.randn(2, 4, 4)),
    ),
    # dtypes
    "float tags": (
        TypeError,
        "tags: expected integer tag indices, got torch.float32",
        lambda c, e, t: c(e, t.float()),
    ),
    "bool tags": (TypeError, "tags: expected integer", lambda c, e, t: c(e, t.bool())),
    "integer emissions": (
        TypeError,
        "emissions: expected a floating-point tensor",
        lambda c, e, t: c(e.long(), t),
    ),
    "NaN emissions": (ValueError, "NaN", lambda c, e, t: c(torch.full_like(e, math.nan), t)),
    # mask and lengths
    "mask and lengths": (
        ValueError,
        "give mask or lengths, not both",
        lambda c, e, t: c(e, t, _ONES, lengths=torch.tensor([1, 2])),
    ),
    "length too long": (
        ValueError,
        r"lengths: expected values in \[0, 4\], got \[2, 5\]",
        lambda c, e, t: c(e, t, lengths=torch.tensor([5, 2])),
    ),
    "negative length": (
        ValueError,
        r"lengths: expected values in \[0, 4\]",
        lambda c, e, t: c.decode(e, lengths=torch.tensor([-1, 2])),
    ),
    "float lengths": (
        ValueError,
        r"lengths: expected an integer tensor of shape \(2,\)",
        lambda c, e, t: c(e, t, lengths=torch.tensor([1.0, 2.0])),
    ),
    "lengths shape": (
        ValueError,
        r"lengths: expected an integer tensor of shape \(2,\)",
        lambda c, e, t: c(e, t, lengths=torch.tensor([1, 2, 3])),
    ),
    # the rest
    "reduction": (ValueError, "reduction", lambda c, e, t: c(e, t, reduction="batchmean")),
    "k = 0": (ValueError, "k: expected", lambda c, e, t: c.decode_topk(e, 0)),
    "constraint shapes": (
        ValueError,
        "constraints: expected shapes",
        lambda c, e, t: LinearChainCRF(3, constraints=torch.ones(2, 2, dtype=torch.bool)),
    ),
    "no start": (
        ValueError,
        "no tag may start",
        lambda c, e, t: LinearChainCRF(
            2, constraints=(_ONES[:, :2], _ONES[0, :2] & False, _ONES[0, :2])
        ),
    ),
    "scheme label": (
        ValueError,
        "'E-PER' is not a BIO tag",
        lambda c, e, t: allowed_transitions("BIO", ["O", "E-PER"]),
    ),
    "scheme": (ValueError, "scheme", lambda c, e, t: allowed_transitions("BMES", ["O"])),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs_raise_clearly(name):
    error, match, call = BAD[name]
    crf = LinearChainCRF(3)
    em, tags = _inputs()
    with pytest.raises(error, match=match):
        call(crf, em, tags)


def test_time_major_layout_checks_its_own_shapes():
    crf = LinearChainCRF(3, batch_first=False)
    em = torch.randn(4, 2, 3)  # (T, B, K)
    tags = torch.zeros(4, 2, dtype=torch.long)
    mask = torch.ones(4, 2, dtype=torch.bool)
    mask[3:, 1] = False
    assert crf(em, tags, mask, reduction="none").shape == (2,)
    with pytest.raises(ValueError, match=r"tags: expected shape"):
        crf(em, tags.T)
    with pytest.raises(ValueError, match="hole"):
        crf(em, tags, torch.tensor([[1, 1], [0, 1], [1, 1], [1, 1]]))


def test_empty_batch_and_all_empty_sequences():
    crf = LinearChainCRF(3)
    em, tags = _inputs()
    lengths = torch.zeros(2, dtype=torch.long)
    assert crf(em, tags, lengths=lengths, reduction="sum") == 0.0
    assert crf(em, tags, lengths=lengths, reduction="mean") == 0.0
    paths, scores = crf.decode(em, lengths=lengths)
    assert (paths == -1).all() and (scores == 0).all()
    paths, scores = crf.decode(torch.randn(0, 4, 3))
    assert paths.shape == (0, 4) and scores.shape == (0,)


def test_zero_timesteps():
    # Fixed bug: emissions with T = 0 (a batch of empty sequences, e.g. from a collate of
    # empty sentences) raise IndexError("index 0 is out of bounds for dimension 1 with size
    # 0") in the forward pass and in Viterbi, instead of the documented zero-length
    # semantics (log Z = 0, loss 0, no tags) or a ValueError naming the argument.
    crf = LinearChainCRF(3)
    em, tags = torch.randn(2, 0, 3), torch.zeros(2, 0, dtype=torch.long)
    assert crf.log_partition(em).tolist() == [0.0, 0.0]
    assert crf(em, tags, reduction="sum") == 0.0
    paths, scores = crf.decode(em)
    assert paths.shape == (2, 0) and scores.tolist() == [0.0, 0.0]


def test_float_mask_is_refused():
    # Fixed bug: a float mask (0.5) was silently read as "on" through .bool().
    crf = LinearChainCRF(3)
    with pytest.raises(TypeError, match="mask"):
        crf.log_partition(torch.randn(1, 2, 3), torch.tensor([[1.0, 0.5]]))
