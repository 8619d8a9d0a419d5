r"""Memory-lean cross-entropy: the loss and its gradient in one chunked pass.

PyTorch's label-smoothed cross-entropy keeps ``log_softmax`` (N, K) for the backward and
builds several more (N, K) tensors there (``reference/losses.md`` §3.1): about 3x the
logits in extra peak memory. Here the forward walks the rows in chunks small enough to stay
in cache and, for each chunk, computes the loss and writes the gradient straight into one
(N, K) buffer (or over the logits, with ``inplace_backward=True``, as Liger-Kernel does).
The backward only scales that buffer by the incoming gradient.

Every option is one target distribution over the K classes,

.. math::
    q_j = \text{off} + (\text{on} - \text{off})\,\delta_{jy} - \text{off}\,\delta_{j,\text{pad}}

(``uniform``: on = 1-ε+ε/K, off = ε/K; ``others``: 1-ε and ε/(K-1); ``opennmt``: 1-ε and
ε/(K-2), with the padding column at 0), and per row, with class weights :math:`w` and
:math:`\ell = \mathrm{lse}(z)`,

.. math::
    \text{loss} = \sum_j q_j w_j (\ell - z_j) \;[-H(q)\text{ for the KL form}] + \lambda\ell^2

.. math::
    \partial\,\text{loss} / \partial z_k = p_k \big(\textstyle\sum_j q_j w_j + 2\lambda\ell\big)
    - q_k w_k

so a row needs only :math:`\ell`, :math:`\sum_j w_j z_j`, :math:`z_y` and :math:`z_{pad}`.
Soft-capping :math:`z = c \tanh(x/c)` multiplies the gradient by :math:`1 - (z/c)^2`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import _checks
from . import _reduction

__all__ = [
    "FusedCrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "fused_cross_entropy",
    "linear_cross_entropy",
]

# A chunk of float32 logits is about this many bytes: it stays in the last-level cache (32 MiB
# on the 2-core EPYC of benchmarks/RESULTS.md) across the few passes a chunk needs, and is
# large enough that per-op overhead stays small (1-8 MiB measured equal within noise there).
_CHUNK_BYTES = 4 << 20
# The linear version's chunks feed matmuls, which want many rows: at H=256, V=32000 the
# fused loss took 1.33x the unfused time with 64-row chunks, 0.95x with 512 (64 MiB) and
# the same with 256 (32 MiB), which holds half the memory (one chunk of logits is most of
# the extra peak).
_LINEAR_CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class _Options:
    """What the loss computes: the target form (``on``/``off``/``pad``, see the module doc),
    the KL form's constant ``entropy``, class weights, z-loss and soft-cap."""

    on: float
    off: float
    pad: int | None = None
    entropy: float = 0.0
    class_weight: Tensor | None = None
    z_loss: float = 0.0
    softcap: float | None = None


@dataclass(frozen=True)
class _Rows:
    """Per-row bookkeeping shared by the forward and the backward."""

    target: Tensor  # class per row, ignored rows mapped to class 0
    kept: Tensor  # False for ignored rows
    item_weight: Tensor  # each row's term in the mean's denominator
    grad_scale: (
        Tensor  # each row's factor on the gradient: 1/Σ item_weight for 'mean', 0 if ignored
    )


def _rows(target: Tensor, opts: _Options, ignore_index: int, reduction: str, dtype) -> _Rows:
    kept = target != ignore_index
    safe = target.masked_fill(~kept, 0)
    w = opts.class_weight
    item_weight = kept.to(dtype) if w is None else w.to(dtype)[safe] * kept
    grad_scale = kept.to(dtype)
    if reduction == "mean":  # nothing kept: the loss is NaN (0/0) but the gradient is 0
        total = item_weight.sum()
        grad_scale = torch.where(total > 0, grad_scale / total, 0.0)
    return _Rows(safe, kept, item_weight, grad_scale)


def _chunks(n: int, step: int) -> Iterator[slice]:
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _xlogx(v: float) -> float:
    return 0.0 if v == 0.0 else v * math.log(v)


def options(
    label_smoothing: float,
    smoothing: str,
    num_classes: int,
    ignore_index: int,
    class_weight: Tensor | None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    fn: str = "",
) -> _Options:
    """Validate the options and build the target form."""
    k = num_classes
    eps = _checks.number(label_smoothing, "label_smoothing", fn, low=0.0, high=1.0)
    _checks.one_of(smoothing, ("uniform", "others", "opennmt"), "smoothing", fn)
    z_loss = _checks.number(z_loss, "z_loss", fn, low=0.0)
    if softcap is not None:
        softcap = _checks.number(
            softcap, "softcap", fn, low=0.0, low_open=True, high=math.inf, high_open=True
        )
    extra = {"class_weight": class_weight, "z_loss": z_loss, "softcap": softcap}
    if smoothing == "uniform":
        return _Options(1.0 - eps + eps / k, eps / k, **extra)
    if smoothing == "others":
        if k < 2:
            raise ValueError(f"{fn}: smoothing='others' needs at least 2 classes, got {k}")
        return _Options(1.0 - eps, eps / (k - 1), **extra)
    if class_weight is not None:
        raise ValueError(f"{fn}: smoothing='opennmt' takes no class weight")
    if not 0 <= ignore_index < k or k < 3:
        raise ValueError(
            f"{fn}: smoothing='opennmt' needs ignore_index to be the padding class in "
            f"[0, {k - 1}] and K >= 3, got ignore_index={ignore_index}, K={k}"
        )
    # OpenNMT's target: 1-ε on y, 0 on the padding column, ε/(K-2) elsewhere; subtracting its
    # entropy -(1-ε)log(1-ε) - ε log(ε/(K-2)) turns the cross-entropy into the KL.
    off = eps / (k - 2)
    entropy = -(_xlogx(1.0 - eps) + (k - 2) * _xlogx(off))
    return _Options(1.0 - eps, off, ignore_index, entropy, **extra)


def _chunk_loss_and_grad(
    x: Tensor, target: Tensor, opts: _Options, grad_out: Tensor | None, grad_scale: Tensor
) -> Tensor:
    r"""Per-row losses of one chunk of logits ``x`` (m, K); if ``grad_out`` is given, writes
    ``grad_scale[i] * d(loss_i)/dx_i`` into it (it may be ``x`` itself).

    Computed in float32 (float64 for float64 input). One fused ``softmax`` writes p into the
    gradient buffer; :math:`\ell = \max_j z_j - \log \max_j p_j` (softmax keeps the arg-max
    and :math:`\max_j p_j \ge 1/K`, so this is as accurate as ``logsumexp``, and faster);
    two in-place passes turn p into the gradient.
    """
    ct = torch.promote_types(x.dtype, torch.float32)
    z = x.to(ct)
    if opts.softcap is not None:
        z = torch.tanh(z / opts.softcap) * opts.softcap
    # Every statistic of z is read before the softmax is written: the buffer may be x.
    y = target.unsqueeze(1)
    z_y = z.gather(1, y).squeeze(1)
    z_max = z.amax(1)
    on_off = opts.on - opts.off
    w = None if opts.class_weight is None else opts.class_weight.to(ct)
    w_y = 1.0 if w is None else w[target]
    # Σ_j q_j w_j (ℓ - z_j) = off (ℓ Σw - Σwz) + (on - off) w_y (ℓ - z_y), the sums over the
    # classes whose q has the off mass: all, or all but the padding class (no weights then;
    # summed around it, so a masked -inf padding logit stays out of the sum).
    smooth = 0.0
    if opts.off:
        if opts.pad is not None:
            pad = opts.pad
            w_sum, wz_sum = float(z.shape[1] - 1), z[:, :pad].sum(1) + z[:, pad + 1 :].sum(1)
        elif w is None:
            w_sum, wz_sum = float(z.shape[1]), z.sum(1)
        else:
            w_sum, wz_sum = w.sum(), z @ w
        smooth = opts.off * w_sum
    in_buffer = grad_out is not None and grad_out.dtype == ct and opts.softcap is None
    p = torch.softmax(z, 1, out=grad_out) if in_buffer else torch.softmax(z, 1)
    lse = z_max - torch.log(p.amax(1))

    loss = on_off * w_y * (lse - z_y)
    if opts.off:
        loss = loss + opts.off * (lse * w_sum - wz_sum)
    qw_sum = smooth + on_off * w_y
    if opts.pad is not None:
        loss = loss - opts.entropy
    if opts.z_loss:
        loss = loss + opts.z_loss * lse * lse
    if grad_out is None:
        return loss

    # d/dz_k = p_k (Σ q w + 2λℓ) - q_k w_k, times the row's scale.
    scale = grad_scale.to(ct)
    p.mul_(((qw_sum + 2.0 * opts.z_loss * lse) * scale).unsqueeze(1))
    if opts.off:
        off_term = opts.off * scale.unsqueeze(1)
        p.sub_(off_term if w is None else off_term * w)
    p.scatter_add_(1, y, (-on_off * w_y * scale).unsqueeze(1))
    if opts.pad is not None:
        p[:, opts.pad] += opts.off * scale
    if opts.softcap is not None:
        p.mul_(1.0 - (z / opts.softcap) ** 2)
    if p is not grad_out:
        grad_out.copy_(p)
    return loss


def _scaled(grad: Tensor | None, grad_output: Tensor, in_place: bool) -> Tensor | None:
    """A gradient computed in the forward, times the incoming gradient.

    The buffer is returned as is when the incoming gradient is exactly 1 (the usual
    ``loss.backward()``; checked on CPU only, where it costs no host sync), scaled in place
    when the caller owns it (``inplace_backward``), and otherwise scaled into a new tensor,
    so that repeated backward passes (``retain_graph``, ``gradcheck``) see it unchanged.
    """
    if grad is None:
        return None
    grad_output = grad_output.to(grad.dtype)
    if grad_output.dim() == 0 and grad_output.device.type == "cpu" and bool(grad_output == 1):
        return grad
    return grad.mul_(grad_output) if in_place else grad * grad_output


class _FusedCrossEntropy(torch.autograd.Function):
    """Chunked cross-entropy whose forward also computes the gradient (see the module doc)."""

    @staticmethod
    def forward(
        ctx,
        logits: Tensor,
        target: Tensor,
        opts: _Options,
        ignore_index: int,
        reduction: str,
        inplace_backward: bool,
        chunk_rows: int,
        want_grad: bool,
    ) -> Tensor:
        ct = torch.promote_types(logits.dtype, torch.float32)
        rows = _rows(target, opts, ignore_index, reduction, ct)
        grad = None
        if want_grad:  # needs_input_grad is True under no_grad too: asked by the caller
            grad = logits if inplace_backward else torch.empty_like(logits)
        loss = torch.empty(logits.shape[0], dtype=ct, device=logits.device)
        for r in _chunks(logits.shape[0], chunk_rows):
            g = None if grad is None else grad[r]
            loss[r] = _chunk_loss_and_grad(logits[r], rows.target[r], opts, g, rows.grad_scale[r])
        loss = torch.where(rows.kept, loss, 0.0)
        ctx.save_for_backward(grad)
        ctx.reduction, ctx.inplace, ctx.consumed = reduction, inplace_backward, False
        return _reduction.reduce(loss, reduction, item_weight=rows.item_weight).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        if ctx.consumed:
            raise RuntimeError(
                "fused_cross_entropy: with inplace_backward=True the gradient lives in the "
                "logits' memory and is used up by the first backward; a second backward "
                "through the same graph (retain_graph=True) is not supported"
            )
        ctx.consumed = ctx.inplace
        (grad,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad_output = grad_output.unsqueeze(1)
        return _scaled(grad, grad_output, ctx.inplace), None, None, None, None, None, None, None


def _check_logits_target(input: Tensor, target: Tensor, fn: str) -> int:
    _checks.floating(input, "input", fn)
    _checks.tensor(target, "target", fn)
    _checks.same_device({"input": input, "target": target}, fn)
    if input.dim() < 2:
        raise ValueError(f"{fn}: input: expected shape (N, K, ...), got {tuple(input.shape)}")
    want = input.shape[:1] + input.shape[2:]
    if target.shape != want:
        raise ValueError(
            f"{fn}: target: expected class indices of shape {tuple(want)}, "
            f"got {tuple(target.shape)}"
        )
    return input.shape[1]


def fused_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    smoothing: str = "uniform",
    z_loss: float = 0.0,
    softcap: float | None = None,
    inplace_backward: bool = False,
    chunk_rows: int | None = None,
) -> Tensor:
    r"""Cross-entropy for class indices, computed in row chunks together with its gradient.

    The value and gradient of :func:`~mldl.losses.cross_entropy` (PyTorch's weighted mean,
    ``ignore_index``, label smoothing) with at most one (N, K) tensor of extra memory: the
    gradient, written during the forward. Options PyTorch lacks:

    * ``smoothing``: ``'uniform'`` (ε/K, PyTorch's), ``'others'`` (ε/(K-1)) or ``'opennmt'``:
      the notes' third snippet, the KL divergence to OpenNMT's target (padding class
      ``ignore_index`` zeroed, padded rows skipped) through its closed-form entropy;
      ``'mean'`` then averages over kept rows.
    * ``z_loss``: adds :math:`\lambda\,\mathrm{lse}(z)^2` to each kept row (PaLM), unweighted;
      ``'mean'`` divides it by the cross-entropy's denominator.
    * ``softcap``: logits soft-capped as :math:`c\tanh(x/c)` (Gemma 2) before the loss.
    * ``inplace_backward=True``: the gradient is written over ``input``, **destroying the
      logits**, so extra memory is O(N). PyTorch raises in backward if anything else saved
      the logits for its own gradient.

    The backward returns the gradient buffer itself when ``loss.backward()`` starts from 1
    (on CPU), else a scaled copy; with ``inplace_backward=True`` it scales in place, and a
    second backward through the same graph raises.

    Shape:
        input: :math:`(N, K)` or :math:`(N, K, d_1, ...)` logits; target: :math:`(N)` or
        :math:`(N, d_1, ...)` class indices; output: scalar, or target's shape for ``'none'``.

    >>> import torch
    >>> x, y = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([0, 1])
    >>> fused_cross_entropy(x, y)
    tensor(0.1672)
    """
    fn = "fused_cross_entropy"
    _reduction.check(reduction, fn)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    k = _check_logits_target(input, target, fn)
    target = _checks.class_indices(target, k, "target", fn, ignore_index=ignore_index)
    _checks.class_weight(weight, k, input, fn)
    opts = options(label_smoothing, smoothing, k, ignore_index, weight, z_loss, softcap, fn)
    _checks.values(input, _checks.LOGITS, "input", fn)
    _checks.not_probabilities(input, "input", fn, class_dim=1)
    if inplace_backward and input.dim() > 2:
        raise ValueError(
            f"{fn}: inplace_backward=True needs (N, K) logits, got shape {tuple(input.shape)}"
        )
    if chunk_rows is not None:
        chunk_rows = _checks.integer(chunk_rows, "chunk_rows", fn, low=1)
    return apply(input, target, opts, ignore_index, reduction, inplace_backward, chunk_rows)


def apply(
    input: Tensor,
    target: Tensor,
    opts: _Options,
    ignore_index: int,
    reduction: str,
    inplace_backward: bool = False,
    chunk_rows: int | None = None,
) -> Tensor:
    """The fused loss on checked arguments (for :func:`~mldl.losses.cross_entropy`, which
    checks them itself): (N, K, ...) logits and int64 class indices."""
    k = input.shape[1]
    rows = input.movedim(1, -1).reshape(-1, k) if input.dim() > 2 else input
    step = chunk_rows or max(1, _CHUNK_BYTES // (4 * k))
    want_grad = torch.is_grad_enabled() and input.requires_grad
    loss = _FusedCrossEntropy.apply(
        rows,
        target.reshape(-1),
        opts,
        ignore_index,
        reduction,
        inplace_backward and want_grad,  # never overwrite logits no backward will use
        step,
        want_grad,
    )
    return loss.reshape(target.shape) if reduction == "none" else loss


def wins(input: Tensor) -> bool:
    """Whether the fused loss beats PyTorch's for these logits: on CPU, when a gradient is
    wanted, for (N, K) logits with K >= 1024 and N·K >= 2^21 (measured crossover on the
    machine of benchmarks/RESULTS.md: 0.55-0.83x of native time above it, up to 2.6x below
    it, where per-chunk overhead dominates)."""
    return (
        input.device.type == "cpu"
        and input.requires_grad
        and torch.is_grad_enabled()
        and input.dim() == 2
        and input.shape[1] >= 1024
        and input.numel() >= 1 << 21
    )


# ---------------------------------------------------------------- linear + cross-entropy


def _chunk_logits(h: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())


def _chain_into_linear(
    grad_logits: Tensor,
    h: Tensor,
    weight: Tensor,
    grads: tuple[Tensor | None, Tensor | None, Tensor | None],
    r: slice,
) -> None:
    """Chain one chunk's logit gradient G into the layer: dh = G W, dW += Gᵀ h, db += Σ G."""
    grad_h, grad_w, grad_b = grads
    if grad_h is not None:
        torch.mm(grad_logits, weight, out=grad_h[r])
    if grad_w is not None:
        grad_w.addmm_(grad_logits.t().to(grad_w.dtype), h.to(grad_w.dtype))
    if grad_b is not None:
        grad_b += grad_logits.sum(0, dtype=grad_b.dtype)


def _linear_grads(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, ct):
    """Buffers for the gradients that are needed: dh in hidden's dtype, dW and db accumulated
    in float32 (or wider)."""
    need_h, need_w, need_b = ctx.needs_input_grad[:3]
    return (
        torch.empty_like(hidden) if need_h else None,
        torch.zeros(weight.shape, dtype=ct, device=weight.device) if need_w else None,
        torch.zeros(weight.shape[0], dtype=ct, device=weight.device)
        if need_b and bias is not None
        else None,
    )


def _cast_grads(grads, weight: Tensor, bias: Tensor | None):
    grad_h, grad_w, grad_b = grads
    return (
        grad_h,
        None if grad_w is None else grad_w.to(weight.dtype),
        None if grad_b is None else grad_b.to(bias.dtype),
    )


class _LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(hidden @ weight.T + bias, target)`` over token chunks: the (N, V)
    logits exist one chunk at a time. For 'mean'/'sum' the gradients are accumulated in the
    forward (three matmuls in all, as unfused); for 'none' the backward recomputes each
    chunk's logits, since the per-row incoming gradient is only known then."""

    @staticmethod
    def forward(
        ctx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        opts: _Options,
        ignore_index: int,
        reduction: str,
        chunk_rows: int,
        want_grad: bool,
    ) -> Tensor:
        ct = torch.promote_types(hidden.dtype, torch.float32)
        rows = _rows(target, opts, ignore_index, reduction, ct)
        precompute = reduction != "none" and want_grad
        grads = _linear_grads(ctx, hidden, weight, bias, ct) if precompute else None
        loss = torch.empty(hidden.shape[0], dtype=ct, device=hidden.device)
        for r in _chunks(hidden.shape[0], chunk_rows):
            logits = _chunk_logits(hidden[r], weight, bias)
            g = logits if precompute else None  # the gradient overwrites the chunk's logits
            loss[r] = _chunk_loss_and_grad(logits, rows.target[r], opts, g, rows.grad_scale[r])
            if precompute:
                _chain_into_linear(logits, hidden[r], weight, grads, r)
        loss = torch.where(rows.kept, loss, 0.0)
        ctx.opts, ctx.rows, ctx.chunk_rows = opts, rows, chunk_rows
        ctx.reduction = reduction
        if precompute:
            ctx.save_for_backward(*_cast_grads(grads, weight, bias))
        else:
            ctx.save_for_backward(hidden, weight, bias)
        return _reduction.reduce(loss, reduction, item_weight=rows.item_weight).to(hidden.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        rest = (None,) * 6
        if ctx.reduction != "none":
            # These gradients are small (N x H, V x H): hand out copies, so that autograd's
            # .grad never aliases what a repeated backward would read again.
            return *(None if g is None else g * grad_output for g in ctx.saved_tensors), *rest
        hidden, weight, bias = ctx.saved_tensors
        ct = torch.promote_types(hidden.dtype, torch.float32)
        grads = _linear_grads(ctx, hidden, weight, bias, ct)
        rows = ctx.rows
        grad_scale = rows.grad_scale * grad_output.to(ct)
        for r in _chunks(hidden.shape[0], ctx.chunk_rows):
            logits = _chunk_logits(hidden[r], weight, bias)
            _chunk_loss_and_grad(logits, rows.target[r], ctx.opts, logits, grad_scale[r])
            _chain_into_linear(logits, hidden[r], weight, grads, r)
        return *_cast_grads(grads, weight, bias), *rest


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    *,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_rows: int | None = None,
) -> Tensor:
    r"""Cross-entropy of a linear classifier's logits, never holding the logits whole.

    Equal to ``cross_entropy(F.linear(hidden, weight, bias), target, class_weight, ...)``,
    with gradients for ``hidden``, ``weight`` and ``bias``; the (N, V) logits are computed
    one chunk of tokens at a time, so extra memory is one chunk of logits plus the
    parameter gradients. Options as in :func:`fused_cross_entropy`.

    Shape:
        hidden: :math:`(*, H)`; weight: :math:`(V, H)`; bias: :math:`(V)`; target:
        :math:`(*)` class indices; output: scalar, or :math:`(*)` for ``'none'``.

    >>> import torch
    >>> h, w = torch.eye(2), torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    >>> linear_cross_entropy(h, w, torch.tensor([0, 1]))  # logits [[2, 0, 0], [0, 3, 0]]
    tensor(0.1672)
    """
    fn = "linear_cross_entropy"
    _reduction.check(reduction, fn)
    _checks.floating(hidden, "hidden", fn)
    _checks.floating(weight, "weight", fn)
    _checks.ndim(weight, (2,), "weight", fn)
    if hidden.dim() < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{fn}: hidden: expected last dimension {weight.shape[1]} (weight is "
            f"{tuple(weight.shape)}), got shape {tuple(hidden.shape)}"
        )
    v = weight.shape[0]
    if weight.dtype != hidden.dtype:
        raise TypeError(f"{fn}: weight: expected hidden's dtype {hidden.dtype}, got {weight.dtype}")
    if bias is not None:
        _checks.floating(bias, "bias", fn)
        if bias.shape != (v,):
            raise ValueError(f"{fn}: bias: expected shape ({v},), got {tuple(bias.shape)}")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"{fn}: bias: expected hidden's dtype {hidden.dtype}, got {bias.dtype}")
    _checks.tensor(target, "target", fn)
    if target.shape != hidden.shape[:-1]:
        raise ValueError(
            f"{fn}: target: expected class indices of shape {tuple(hidden.shape[:-1])}, "
            f"got {tuple(target.shape)}"
        )
    target = _checks.class_indices(target, v, "target", fn, ignore_index=ignore_index)
    _checks.class_weight(class_weight, v, hidden, fn, "class_weight", "hidden")
    _checks.same_device({"hidden": hidden, "weight": weight, "bias": bias, "target": target}, fn)
    if chunk_rows is not None:
        chunk_rows = _checks.integer(chunk_rows, "chunk_rows", fn, low=1)
    opts = options(label_smoothing, smoothing, v, ignore_index, class_weight, z_loss, softcap, fn)
    _checks.values(hidden, _checks.REAL, "hidden", fn)
    _checks.values(weight, _checks.REAL, "weight", fn)
    if bias is not None:
        _checks.values(bias, _checks.REAL, "bias", fn)
    step = chunk_rows or max(1, _LINEAR_CHUNK_BYTES // (4 * v))
    params = (hidden, weight, bias)
    want_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in params)
    loss = _LinearCrossEntropy.apply(
        hidden.reshape(-1, hidden.shape[-1]),
        weight,
        bias,
        target.reshape(-1),
        opts,
        ignore_index,
        reduction,
        step,
        want_grad,
    )
    return loss.reshape(target.shape) if reduction == "none" else loss


# ------------------------------------------------------------------------------- modules


class FusedCrossEntropyLoss(nn.Module):
    """Module form of :func:`fused_cross_entropy`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        smoothing: str = "uniform",
        z_loss: float = 0.0,
        softcap: float | None = None,
        inplace_backward: bool = False,
        chunk_rows: int | None = None,
    ) -> None:
        super().__init__()
        fn = "FusedCrossEntropyLoss"
        self.register_buffer("weight", _checks.optional_tensor(weight, "weight", fn))
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing = _checks.number(label_smoothing, "label_smoothing", fn, low=0, high=1)
        _checks.one_of(smoothing, ("uniform", "others", "opennmt"), "smoothing", fn)
        self.smoothing = smoothing
        self.z_loss = _checks.number(z_loss, "z_loss", fn, low=0.0)
        self.softcap = softcap
        self.inplace_backward = inplace_backward
        self.chunk_rows = (
            None if chunk_rows is None else _checks.integer(chunk_rows, "chunk_rows", fn, low=1)
        )

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return fused_cross_entropy(
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            smoothing=self.smoothing,
            z_loss=self.z_loss,
            softcap=self.softcap,
            inplace_backward=self.inplace_backward,
            chunk_rows=self.chunk_rows,
        )


class LinearCrossEntropyLoss(nn.Module):
    """Module form of :func:`linear_cross_entropy`: ``loss(hidden, weight, target, bias)``,
    typically with a language model's output embedding as ``weight``."""

    def __init__(
        self,
        *,
        class_weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        smoothing: str = "uniform",
        z_loss: float = 0.0,
        softcap: float | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        super().__init__()
        fn = "LinearCrossEntropyLoss"
        self.register_buffer(
            "class_weight", _checks.optional_tensor(class_weight, "class_weight", fn)
        )
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
        self.reduction = _reduction.check(reduction, fn)
        self.label_smoothing = _checks.number(label_smoothing, "label_smoothing", fn, low=0, high=1)
        _checks.one_of(smoothing, ("uniform", "others", "opennmt"), "smoothing", fn)
        self.smoothing = smoothing
        self.z_loss = _checks.number(z_loss, "z_loss", fn, low=0.0)
        self.softcap = softcap
        self.chunk_rows = (
            None if chunk_rows is None else _checks.integer(chunk_rows, "chunk_rows", fn, low=1)
        )

    def forward(
        self, hidden: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None = None
    ) -> Tensor:
        return linear_cross_entropy(
            hidden,
            weight,
            target,
            bias,
            class_weight=self.class_weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            smoothing=self.smoothing,
            z_loss=self.z_loss,
            softcap=self.softcap,
            chunk_rows=self.chunk_rows,
        )
