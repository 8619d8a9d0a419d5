r"""Linear-chain conditional random fields: the notes' log-linear Markov random field without
latent variables, conditioned on the input.

For emissions :math:`e_t(y)` (a network's per-token scores) and transition scores
:math:`A_{ij}` (from tag i to tag j, as in pytorch-crf), a tag sequence scores

.. math::
    s(y) = \pi^{start}_{y_1} + \sum_{t=1}^{T} e_t(y_t) + \sum_{t=2}^{T} A_{y_{t-1} y_t}
           + \pi^{end}_{y_T},\qquad
    P(y \mid x) = \frac{e^{s(y)}}{Z(x)},\quad Z(x) = \sum_{y'} e^{s(y')}

:math:`\log Z` is the forward algorithm (one ``logsumexp`` per step, batched); the unary and
pairwise marginals are its gradient with respect to the emissions and the per-step
transitions (autograd of the forward pass is the backward pass); Viterbi and k-best decoding
replace the sum by a max. Allowed-transition constraints (from a BIO / IOBES / BIOUL tag
scheme, or any boolean matrix) set forbidden scores to :math:`-\infty` in training and
decoding alike, so the model never assigns probability to a path it may not decode.

Sequences are given by a prefix ``mask`` (B, T) or by ``lengths`` (B,); a zero-length
sequence has exactly one (empty) labelling: log Z = 0, its loss is 0 and it decodes to no
tags.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import _checks
from ..losses import _reduction

__all__ = ["LinearChainCRF", "allowed_transitions", "viterbi_decode"]

SCHEMES = ("BIO", "IOB2", "IOBES", "BIOES", "BIOUL")
CRF_REDUCTIONS = ("none", "sum", "mean", "token_mean")


def allowed_transitions(scheme: str, labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Which tag transitions a tag scheme allows: ``(allowed (K, K), start (K), end (K))``.

    ``labels`` are tag strings such as ``"O"``, ``"B-PER"``, ``"I-PER"`` (prefix, a dash,
    the entity type). BIO (= IOB2): I-x only after B-x or I-x, never first. IOBES (= BIOES,
    BIOUL with U = S and L = E): B-x is followed by I-x or E-x of the same type, I-x too;
    E-x, S-x and O end an entity, so the next tag is O, B-* or S-*; a sequence may not
    start inside an entity nor end in an open one.

    >>> allowed, start, end = allowed_transitions("BIO", ["O", "B-PER", "I-PER"])
    >>> allowed.int()  # rows: from, columns: to
    tensor([[1, 1, 0],
            [1, 1, 1],
            [1, 1, 1]], dtype=torch.int32)
    >>> start.int(), end.int()
    (tensor([1, 1, 0], dtype=torch.int32), tensor([1, 1, 1], dtype=torch.int32))
    """
    fn = "allowed_transitions"
    _checks.one_of(scheme, SCHEMES, "scheme", fn)
    parsed = []
    for label in labels:
        if label == "O":
            parsed.append(("O", ""))
            continue
        prefix, _, kind = label.partition("-")
        ok = {"BIO": "BI", "IOB2": "BI", "IOBES": "BIES", "BIOES": "BIES", "BIOUL": "BILU"}[scheme]
        if len(prefix) != 1 or prefix not in ok or not kind:
            raise ValueError(
                f"{fn}: labels: {label!r} is not a {scheme} tag "
                f"(expected 'O' or one of {list(ok)} + '-TYPE')"
            )
        prefix = {"U": "S", "L": "E"}.get(prefix, prefix)
        parsed.append((prefix, kind))
    k = len(parsed)
    allowed = torch.zeros(k, k, dtype=torch.bool)
    start = torch.zeros(k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    bio = scheme in ("BIO", "IOB2")
    for j, (pj, kj) in enumerate(parsed):
        start[j] = pj in ("O", "B", "S")
        end[j] = pj in ("O", "I", "B") if bio else pj in ("O", "E", "S")
        for i, (pi, ki) in enumerate(parsed):
            if bio:
                allowed[i, j] = pj != "I" or (pi in ("B", "I") and ki == kj)
            else:
                opens = pi in ("B", "I")  # inside an entity: continue or close it
                allowed[i, j] = (pj in ("I", "E") and ki == kj) if opens else pj in ("O", "B", "S")
    return allowed, start, end


def _lengths_from(
    mask: Tensor | None, lengths: Tensor | None, batch: int, steps: int, device, fn: str
) -> Tensor:
    """Sequence lengths (B,) from a prefix mask or lengths; checks both."""
    if mask is not None and lengths is not None:
        raise ValueError(f"{fn}: give mask or lengths, not both")
    if lengths is not None:
        _checks.tensor(lengths, "lengths", fn)
        if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.shape != (batch,):
            raise ValueError(
                f"{fn}: lengths: expected an integer tensor of shape ({batch},), "
                f"got {lengths.dtype} {tuple(lengths.shape)}"
            )
        lengths = lengths.to(device).long()
        if bool(((lengths < 0) | (lengths > steps)).any()):
            raise ValueError(
                f"{fn}: lengths: expected values in [0, {steps}], got "
                f"[{int(lengths.min())}, {int(lengths.max())}]"
            )
        return lengths
    if mask is None:
        return torch.full((batch,), steps, dtype=torch.long, device=device)
    _checks.tensor(mask, "mask", fn)
    if mask.shape != (batch, steps):
        raise ValueError(f"{fn}: mask: expected shape ({batch}, {steps}), got {tuple(mask.shape)}")
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"{fn}: mask: expected a bool (or 0/1 integer) tensor, got {mask.dtype}")
    mask = mask.to(device).bool()
    lengths = mask.sum(1)
    prefix = torch.arange(steps, device=device) < lengths[:, None]
    if not torch.equal(prefix, mask):
        row = int((prefix != mask).any(1).nonzero()[0])
        raise ValueError(
            f"{fn}: mask: row {row} has a hole (masks must be a prefix of ones, "
            "then zeros: sequences padded at the end)"
        )
    return lengths


class LinearChainCRF(nn.Module):
    """A linear-chain CRF layer over per-token emission scores.

    Args:
        num_tags: K.
        batch_first: emissions are (B, T, K) (default) or (T, B, K).
        constraints: ``None``, a (K, K) boolean matrix of allowed transitions (``[i, j]``:
            from i to j), or a tuple ``(allowed, start, end)`` as returned by
            :func:`allowed_transitions`.

    Parameters ``transitions[i, j]`` (score of moving from tag i to tag j, as in
    pytorch-crf), ``start_transitions`` and ``end_transitions``, initialised U(-0.1, 0.1).

    Called as ``crf(emissions, tags, mask=None, *, lengths=None, reduction='mean')`` it
    returns the negative log-likelihood (a loss, unlike pytorch-crf's log-likelihood).

    >>> import torch
    >>> crf = LinearChainCRF(3)
    >>> emissions, tags = torch.randn(2, 4, 3), torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    >>> loss = crf(emissions, tags, lengths=torch.tensor([4, 2]))
    >>> paths, scores = crf.decode(emissions, lengths=torch.tensor([4, 2]))
    >>> paths[1, 2:].tolist()  # beyond its length, padding
    [-1, -1]
    """

    def __init__(
        self,
        num_tags: int,
        batch_first: bool = True,
        constraints: Tensor | tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> None:
        super().__init__()
        fn = "LinearChainCRF"
        self.num_tags = _checks.integer(num_tags, "num_tags", fn, low=1)
        self.batch_first = bool(batch_first)
        k = self.num_tags
        self.transitions = nn.Parameter(torch.empty(k, k).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        allowed, start, end = self._constraints(constraints, fn)
        self.register_buffer("allowed", allowed)
        self.register_buffer("allowed_start", start)
        self.register_buffer("allowed_end", end)

    def _constraints(self, constraints, fn: str) -> tuple[Tensor, Tensor, Tensor]:
        k = self.num_tags
        if constraints is None:
            return (
                torch.ones(k, k, dtype=torch.bool),
                torch.ones(k, dtype=torch.bool),
                torch.ones(k, dtype=torch.bool),
            )
        if isinstance(constraints, Tensor):
            constraints = (
                constraints,
                torch.ones(k, dtype=torch.bool),
                torch.ones(k, dtype=torch.bool),
            )
        if not isinstance(constraints, tuple) or len(constraints) != 3:
            raise TypeError(
                f"{fn}: constraints: expected a (K, K) bool tensor or a tuple (allowed, start, end)"
            )
        allowed, start, end = (torch.as_tensor(c).bool() for c in constraints)
        if allowed.shape != (k, k) or start.shape != (k,) or end.shape != (k,):
            raise ValueError(
                f"{fn}: constraints: expected shapes ({k}, {k}), ({k},), ({k},), "
                f"got {tuple(allowed.shape)}, {tuple(start.shape)}, "
                f"{tuple(end.shape)}"
            )
        if not bool(start.any()) or not bool(end.any()):
            raise ValueError(f"{fn}: constraints: no tag may start or end a sequence")
        return allowed, start, end

    def extra_repr(self) -> str:
        constrained = not bool(
            self.allowed.all() and self.allowed_start.all() and self.allowed_end.all()
        )
        return (
            f"num_tags={self.num_tags}, batch_first={self.batch_first}, constrained={constrained}"
        )

    # ------------------------------------------------------------------- scores & checks

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Transition, start and end scores with forbidden moves at -inf."""
        inf = float("-inf")
        return (
            self.transitions.masked_fill(~self.allowed, inf),
            self.start_transitions.masked_fill(~self.allowed_start, inf),
            self.end_transitions.masked_fill(~self.allowed_end, inf),
        )

    def _prepare(self, emissions: Tensor, mask, lengths, fn: str) -> tuple[Tensor, Tensor]:
        """Emissions as (B, T, K) and lengths (B,)."""
        _checks.floating(emissions, "emissions", fn)
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            layout = "(B, T, K)" if self.batch_first else "(T, B, K)"
            raise ValueError(
                f"{fn}: emissions: expected {layout} with K={self.num_tags}, got "
                f"shape {tuple(emissions.shape)}"
            )
        if not self.batch_first:
            emissions = emissions.transpose(0, 1)
            if mask is not None and isinstance(mask, Tensor) and mask.dim() == 2:
                mask = mask.transpose(0, 1)
        _checks.values(emissions, _checks.REAL, "emissions", fn)
        b, t, _ = emissions.shape
        return emissions, _lengths_from(mask, lengths, b, t, emissions.device, fn)

    def _check_tags(self, tags: Tensor, emissions: Tensor, lengths: Tensor, fn: str) -> Tensor:
        _checks.tensor(tags, "tags", fn)
        if not self.batch_first and tags.dim() == 2:
            tags = tags.transpose(0, 1)
        if tags.shape != emissions.shape[:2]:
            raise ValueError(
                f"{fn}: tags: expected shape {tuple(emissions.shape[:2])} "
                f"(matching emissions), got {tuple(tags.shape)}"
            )
        if tags.is_floating_point() or tags.dtype == torch.bool:
            raise TypeError(f"{fn}: tags: expected integer tag indices, got {tags.dtype}")
        tags = tags.to(emissions.device).long()
        inside = torch.arange(tags.shape[1], device=tags.device) < lengths[:, None]
        if tags.device.type == "cpu" or _checks.checks_enabled():
            bad = inside & ((tags < 0) | (tags >= self.num_tags))
            if bool(bad.any()):
                b, t = bad.nonzero()[0].tolist()
                raise ValueError(
                    f"{fn}: tags: expected tag indices in [0, {self.num_tags - 1}] "
                    f"within each sequence, got {int(tags[b, t])} at ({b}, {t})"
                )
        return torch.where(inside, tags, torch.zeros_like(tags))  # padding: any value

    # ------------------------------------------------------------------ the DP, forward

    def _log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        if emissions.shape[1] == 0:  # a batch of empty sequences: log Z = 0, differentiably
            return emissions.sum(dim=(1, 2))
        trans, start, end = self._scores()
        log_z, lossy = _ForwardBackward.apply(emissions, trans, start, end, lengths)
        if emissions.device.type == "cpu":
            # The scaled passes run in float64: they lose precision only if one step's
            # scores of reachable tags differ by more than ~708 nats (a scale below the
            # smallest normal double); such rows (none in practice) are recomputed in log
            # space. Checked on CPU, where asking costs no sync.
            bad = lossy & (lengths > 0)
            if bool(bad.any()):
                exact = _log_space_log_z(emissions[bad], trans, start, end, lengths[bad])
                log_z = log_z.masked_scatter(bad, exact)
        return log_z

    def _path_score(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        trans, start, end = self._scores()
        _b, steps, _ = emissions.shape
        if steps == 0:
            return emissions.sum(dim=(1, 2))
        inside = torch.arange(steps, device=tags.device) < lengths[:, None]
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = (emit * inside).sum(1)
        moves = trans[tags[:, :-1], tags[:, 1:]]
        score = score + torch.where(inside[:, 1:], moves, torch.zeros_like(moves)).sum(1)
        last = tags.gather(1, (lengths - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
        edges = start[tags[:, 0]] + end[last]
        return torch.where(lengths > 0, score + edges, torch.zeros_like(score))

    def log_partition(
        self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Tensor | None = None
    ) -> Tensor:
        """:math:`\\log Z(x)` per sequence, shape (B,) (0 for an empty sequence)."""
        emissions, lengths = self._prepare(emissions, mask, lengths, "LinearChainCRF.log_partition")
        return self._log_partition(emissions, lengths)

    def score(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """The score :math:`s(y)` of given tag sequences, shape (B,)."""
        fn = "LinearChainCRF.score"
        emissions, lengths = self._prepare(emissions, mask, lengths, fn)
        return self._path_score(emissions, self._check_tags(tags, emissions, lengths, fn), lengths)

    def forward(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """The negative log-likelihood :math:`\\log Z(x) - s(y)`, reduced: ``'none'`` (B,),
        ``'sum'``, ``'mean'`` (over sequences), ``'token_mean'`` (over tokens). A tag path
        through a forbidden transition has infinite loss."""
        fn = "LinearChainCRF"
        _reduction.check(reduction, fn, CRF_REDUCTIONS)
        emissions, lengths = self._prepare(emissions, mask, lengths, fn)
        tags = self._check_tags(tags, emissions, lengths, fn)
        nll = self._log_partition(emissions, lengths) - self._path_score(emissions, tags, lengths)
        if reduction == "token_mean":
            return nll.sum() / lengths.sum().to(nll.dtype)
        return _reduction.reduce(nll, reduction)

    def marginals(
        self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Posterior marginals: unary :math:`P(y_t = j)` (B, T, K) and pairwise
        :math:`P(y_{t-1} = i, y_t = j)` (B, T-1, K, K), zero beyond each length: the
        forward-backward products (equal to the gradient of log Z with respect to the
        emissions and the per-step transition scores)."""
        fn = "LinearChainCRF.marginals"
        emissions, lengths = self._prepare(emissions, mask, lengths, fn)
        trans, start, end = self._scores()
        wide = torch.promote_types(emissions.dtype, torch.float64)
        b, steps, k = emissions.shape
        if steps == 0:
            unary, pairwise = emissions.new_zeros(b, 0, k), emissions.new_zeros(b, 0, k, k)
            if not self.batch_first:
                return unary.transpose(0, 1), pairwise.transpose(0, 1)
            return unary, pairwise
        with torch.no_grad():
            passes = _Passes(
                emissions.to(wide), trans.to(wide), start.to(wide), end.to(wide), lengths
            )
            unary = passes.unary().to(emissions.dtype)
            pairwise = passes.pairwise().to(emissions.dtype)
        if not self.batch_first:
            return unary.transpose(0, 1), pairwise.transpose(0, 1)
        return unary, pairwise

    # ----------------------------------------------------------------------- decoding

    def decode(
        self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The highest-scoring tag path per sequence (Viterbi): a (B, T) LongTensor padded
        with -1 beyond each length, and its score (B,) (0 for empty sequences). Vectorised
        over the batch; no Python loop over it and no host synchronisation."""
        fn = "LinearChainCRF.decode"
        emissions, lengths = self._prepare(emissions, mask, lengths, fn)
        trans, start, end = self._scores()
        with torch.no_grad():
            paths, scores = _compiled_viterbi()(emissions, lengths, trans, start, end)
        return (paths if self.batch_first else paths.transpose(0, 1)), scores

    def decode_topk(
        self,
        emissions: Tensor,
        k: int,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The k highest-scoring paths per sequence, best first: (B, k, T) padded with -1,
        and their scores (B, k); where fewer than k paths exist, the extra ones are all -1
        with score -inf."""
        fn = "LinearChainCRF.decode_topk"
        k = _checks.integer(k, "k", fn, low=1)
        emissions, lengths = self._prepare(emissions, mask, lengths, fn)
        trans, start, end = self._scores()
        with torch.no_grad():
            paths, scores = _topk(emissions, lengths, trans, start, end, k)
        return (paths if self.batch_first else paths.permute(2, 0, 1)), scores


def viterbi_decode(
    emissions: Tensor, lengths: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> tuple[Tensor, Tensor]:
    """Viterbi over (B, T, K) emissions with sequence ``lengths``: paths (B, T) padded with
    -1, and scores (B,). Plain tensor code, TorchScript-compilable
    (``torch.jit.script(viterbi_decode)``)."""
    b, steps, k = emissions.shape
    if steps == 0:
        empty = torch.full((b, 0), -1, dtype=torch.long, device=emissions.device)
        return empty, emissions.new_zeros(b)
    score = start.unsqueeze(0) + emissions[:, 0]
    back = torch.zeros(b, steps, k, dtype=torch.long, device=emissions.device)
    for t in range(1, steps):
        cand = score.unsqueeze(2) + transitions.unsqueeze(0)
        best, arg = cand.max(dim=1)
        live = (lengths > t).unsqueeze(1)
        score = torch.where(live, best + emissions[:, t], score)
        back[:, t] = arg
    score = score + end.unsqueeze(0)
    best_score, last = score.max(dim=1)
    paths = torch.full((b, steps), -1, dtype=torch.long, device=emissions.device)
    current = last
    for t in range(steps - 1, -1, -1):
        at_end = lengths - 1 == t
        inside = lengths - 1 >= t
        current = torch.where(at_end, last, current)
        paths[:, t] = torch.where(inside, current, torch.full_like(current, -1))
        if t > 0:
            prev = back[:, t].gather(1, current.clamp_min(0).unsqueeze(1)).squeeze(1)
            current = torch.where(inside, prev, current)
    best_score = torch.where(lengths > 0, best_score, torch.zeros_like(best_score))
    return paths, best_score


_VITERBI: list = []


def _compiled_viterbi():
    """:func:`viterbi_decode` compiled with TorchScript once (its time loop then runs
    without Python's per-op overhead: ~30% faster at T=100), or as is if that fails."""
    if not _VITERBI:
        try:
            # an internal speed-up: torch 2.10+ deprecates torch.jit.script, which is no
            # concern of the caller's, so its warning is not passed on
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _VITERBI.append(torch.jit.script(viterbi_decode))
        except Exception:  # pragma: no cover - TorchScript unavailable
            _VITERBI.append(viterbi_decode)
    return _VITERBI[0]


def _topk(
    emissions: Tensor, lengths: Tensor, trans: Tensor, start: Tensor, end: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """k-best Viterbi: per state, the k best partial scores and where each came from."""
    b, steps, n = emissions.shape
    dev = emissions.device
    inf = float("-inf")
    if steps == 0:  # one (empty) path per sequence, score 0
        first = torch.arange(k, device=dev).unsqueeze(0) == 0
        scores = torch.where(first, 0.0, inf).to(emissions.dtype).expand(b, k).clone()
        return torch.full((b, k, 0), -1, dtype=torch.long, device=dev), scores
    score = torch.full((b, n, k), inf, dtype=emissions.dtype, device=dev)
    score[:, :, 0] = start + emissions[:, 0]
    back_state = torch.zeros(b, steps, n, k, dtype=torch.long, device=dev)
    back_rank = torch.zeros(b, steps, n, k, dtype=torch.long, device=dev)
    for t in range(1, steps):
        # candidates into state j: (prev state i, prev rank r) -> score[i, r] + trans[i, j]
        cand = score.unsqueeze(2) + trans.view(1, n, n, 1)  # (b, i, j, r)
        cand = cand.permute(0, 2, 1, 3).reshape(b, n, n * k)  # (b, j, i*k + r)
        best, arg = cand.topk(k, dim=2)
        live = (lengths > t).view(b, 1, 1)
        score = torch.where(live, best + emissions[:, t].unsqueeze(2), score)
        back_state[:, t] = torch.where(live, arg // k, back_state[:, t])
        back_rank[:, t] = torch.where(live, arg % k, back_rank[:, t])
    final = (score + end.view(1, n, 1)).reshape(b, n * k)
    scores, arg = final.topk(k, dim=1)
    state, rank = arg // k, arg % k
    paths = torch.full((b, k, steps), -1, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev).unsqueeze(1).expand(b, k)
    for t in range(steps - 1, -1, -1):
        inside = (lengths - 1 >= t).unsqueeze(1)
        valid = inside & torch.isfinite(scores)
        paths[:, :, t] = torch.where(valid, state, torch.full_like(state, -1))
        if t > 0:
            prev_state = back_state[rows, t, state, rank]
            prev_rank = back_rank[rows, t, state, rank]
            state = torch.where(inside, prev_state, state)
            rank = torch.where(inside, prev_rank, rank)
    empty = (lengths == 0).unsqueeze(1)
    first = torch.arange(k, device=dev).unsqueeze(0) == 0
    scores = torch.where(empty, torch.where(first, 0.0, inf).to(scores.dtype), scores)
    return paths, scores


# ------------------------------------------------------------------ forward-backward


class _Passes:
    """Scaled forward and backward passes in probability space (Rabiner's scaling):
    :math:`\\hat\alpha_t`, :math:`\\hat\beta_t` normalised per step, with
    :math:`\\log Z = \\sum_t \\log c_t`. Transitions enter as :math:`E = e^{A - \\max A}`
    (forbidden moves: 0) and emissions as :math:`e^{e_t - \\max e_t}`, so nothing overflows;
    each step is one (B, K) x (K, K) matmul."""

    def __init__(self, emissions, trans, start, end, lengths):
        b, steps, k = emissions.shape
        self.lengths, self.steps = lengths, steps
        finite = trans[torch.isfinite(trans)]
        self.shift = finite.max() if finite.numel() else trans.new_zeros(())
        self.E = torch.exp(trans - self.shift)  # (K, K), 0 where forbidden
        e_max = emissions.max(dim=2, keepdim=True).values
        e_max = torch.where(torch.isfinite(e_max), e_max, torch.zeros_like(e_max))
        self.e_max = e_max.squeeze(2)  # (B, T)
        self.P = torch.exp(emissions - e_max)  # (B, T, K)
        self.start, self.end = torch.exp(start), torch.exp(end)
        live = torch.arange(steps, device=emissions.device) < lengths[:, None]  # (B, T)
        self.live = live
        alpha = torch.empty(b, steps, k, dtype=emissions.dtype, device=emissions.device)
        scale = torch.ones(b, steps, dtype=emissions.dtype, device=emissions.device)
        a = self.start * self.P[:, 0]
        c = a.sum(1)
        a = a / _nonzero(c)[:, None]
        alpha[:, 0], scale[:, 0] = a, torch.where(live[:, 0], c, torch.ones_like(c))
        for t in range(1, steps):
            nxt = (a @ self.E) * self.P[:, t]
            c = nxt.sum(1)
            nxt = nxt / _nonzero(c)[:, None]
            on = live[:, t]
            a = torch.where(on[:, None], nxt, a)
            alpha[:, t], scale[:, t] = a, torch.where(on, c, torch.ones_like(c))
        self.alpha, self.scale = alpha, scale
        last = (lengths - 1).clamp_min(0)
        a_last = alpha[torch.arange(b), last]
        self.z_end = (a_last * self.end).sum(1)  # the last step's normaliser
        # log Z: the scales, the shifts taken out of every transition and emission, the end
        n_moves = (lengths - 1).clamp_min(0).to(emissions.dtype)
        log_z = (
            torch.log(scale).sum(1)
            + torch.log(self.z_end)
            + n_moves * self.shift
            + (self.e_max * live).sum(1)
        )
        self.log_z = torch.where(lengths > 0, log_z, torch.zeros_like(log_z))
        # a scale or final sum below the smallest normal float is subnormal: its low bits
        # are gone (or it is 0), and log Z with them
        tiny = torch.finfo(emissions.dtype).tiny
        self.lossy = ((scale < tiny) & live).any(1) | (self.z_end < tiny)

    def _betas(self):
        _b, steps, _k = self.P.shape
        beta = torch.empty_like(self.alpha)
        last = self.lengths - 1
        beta_t = torch.zeros_like(self.alpha[:, 0])
        for t in range(steps - 1, -1, -1):
            at_end = (last == t)[:, None]
            inside = (last > t)[:, None]
            if t + 1 < steps:
                # β_t = E (P_{t+1} ⊙ β_{t+1}) / c_{t+1}
                back = (beta_t * self.P[:, t + 1]) @ self.E.T / self.scale[:, t + 1, None]
            else:
                back = beta_t
            beta_t = torch.where(
                at_end,
                self.end / _nonzero(self.z_end)[:, None],
                torch.where(inside, back, torch.zeros_like(back)),
            )
            beta[:, t] = beta_t
        return beta

    def unary(self):
        if not hasattr(self, "_unary"):
            self.beta = self._betas()
            self._unary = self.alpha * self.beta * self.live[:, :, None]
        return self._unary

    def pairwise(self):
        """P(y_{t-1} = i, y_t = j) for t = 1..T-1: (B, T-1, K, K)."""
        self.unary()
        if self.steps < 2:
            return self.alpha.new_zeros(self.alpha.shape[0], 0, *self.E.shape)
        right = self.P[:, 1:] * self.beta[:, 1:] / self.scale[:, 1:, None]  # (B, T-1, K)
        pair = self.alpha[:, :-1, :, None] * self.E * right[:, :, None, :]
        return pair * self.live[:, 1:, None, None]

    def transition_counts(self):
        """Σ_t P(y_{t-1} = i, y_t = j) per sequence, without the (B, T, K, K) tensor."""
        self.unary()
        if self.steps < 2:
            return self.alpha.new_zeros(self.alpha.shape[0], *self.E.shape)
        right = self.P[:, 1:] * self.beta[:, 1:] / self.scale[:, 1:, None] * self.live[:, 1:, None]
        return torch.einsum("bti,btj->bij", self.alpha[:, :-1], right) * self.E


def _nonzero(c: Tensor) -> Tensor:
    return torch.where(c > 0, c, torch.ones_like(c))


def _log_space_log_z(emissions, trans, start, end, lengths) -> Tensor:
    """The forward algorithm in log space (one logsumexp per step), differentiable by
    autograd: slower, exact for any range of scores."""
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha = torch.where((t < lengths).unsqueeze(1), nxt, alpha)
    log_z = torch.logsumexp(alpha + end, dim=1)
    return torch.where(lengths > 0, log_z, torch.zeros_like(log_z))


class _ForwardBackward(torch.autograd.Function):
    """log Z by the scaled forward pass (in float64), and which rows lost precision to
    subnormal scales; its gradient by the backward pass, in closed form: the emissions get
    the unary marginals, the transitions the expected transition counts, start and end the
    first and last marginals (each times the incoming gradient). Rows whose incoming
    gradient is 0 get exactly 0. Under ``create_graph`` (second derivatives: gradient
    penalties, Hessian-vector products) the gradient is instead autograd's through
    :func:`_log_space_log_z`, itself differentiable."""

    @staticmethod
    def forward(ctx, emissions, trans, start, end, lengths):
        wide = torch.promote_types(emissions.dtype, torch.float64)
        passes = _Passes(emissions.to(wide), trans.to(wide), start.to(wide), end.to(wide), lengths)
        ctx.passes, ctx.dtypes = passes, (emissions.dtype, trans.dtype)
        ctx.save_for_backward(emissions, trans, start, end, lengths)
        ctx.mark_non_differentiable(passes.lossy)
        return passes.log_z.to(emissions.dtype), passes.lossy

    @staticmethod
    def backward(ctx, grad, _grad_lossy):
        if torch.is_grad_enabled():
            return _ForwardBackward._differentiable_backward(ctx, grad)
        passes = ctx.passes
        g = grad.to(passes.alpha.dtype) * (passes.lengths > 0)
        use = g != 0
        unary = passes.unary()
        e_dtype, t_dtype = ctx.dtypes
        grad_e = grad_trans = grad_start = grad_end = None
        if ctx.needs_input_grad[0]:
            grad_e = torch.where(use[:, None, None], unary * g[:, None, None], 0.0).to(e_dtype)
        if ctx.needs_input_grad[1]:
            counts = passes.transition_counts() * g[:, None, None]
            grad_trans = torch.where(use[:, None, None], counts, 0.0).sum(0).to(t_dtype)
        if ctx.needs_input_grad[2]:
            first = torch.where(use[:, None], unary[:, 0] * g[:, None], 0.0)
            grad_start = first.sum(0).to(t_dtype)
        if ctx.needs_input_grad[3]:
            last = (passes.lengths - 1).clamp_min(0)
            b = torch.arange(unary.shape[0], device=unary.device)
            final = torch.where(use[:, None], unary[b, last] * g[:, None], 0.0)
            grad_end = final.sum(0).to(t_dtype)
        return grad_e, grad_trans, grad_start, grad_end, None

    @staticmethod
    def _differentiable_backward(ctx, grad):
        *inputs, lengths = ctx.saved_tensors
        wanted = [i for i, need in enumerate(ctx.needs_input_grad[:4]) if need]
        log_z = _log_space_log_z(*inputs, lengths)
        grads = torch.autograd.grad(
            log_z, [inputs[i] for i in wanted], grad, create_graph=True, allow_unused=True
        )
        out: list[Tensor | None] = [None] * 5
        for i, g in zip(wanted, grads, strict=True):
            out[i] = torch.zeros_like(inputs[i]) if g is None else g
        return tuple(out)
