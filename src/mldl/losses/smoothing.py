r"""Label smoothing: every convention, named.

The notes give the formula ``y_ls = (1 - α) * y_hot + α / K`` and three snippets that do
three different things. Each is a named variant here:

============  =====================================  ===========================================
variant       target distribution                    where it comes from
============  =====================================  ===========================================
``uniform``   :math:`(1-\epsilon)\,\delta_y + \epsilon/K`  the notes' formula; PyTorch, timm, Keras,
                                                     optax, the notes' second snippet
``others``    :math:`1-\epsilon` on the target,       the notes' first snippet (pytorch #7455);
              :math:`\epsilon/(K-1)` on each other   sockeye, fastai
``opennmt``   :math:`1-\epsilon` on the target, 0 on  the notes' third snippet (OpenNMT-py), used
              the padding class,                     with KL divergence; rows whose target is the
              :math:`\epsilon/(K-2)` on the others   padding index are all zero
============  =====================================  ===========================================

Binary targets (for :func:`~mldl.losses.bce` and friends) have three conventions too:

=========  ===============================  ======================================
variant    smoothed target                  where it comes from
=========  ===============================  ======================================
``half``   :math:`y(1-\epsilon) + \epsilon/2`   Keras ``BinaryCrossentropy``: toward 0.5
``uniform`` :math:`y(1-\epsilon) + \epsilon/K`  timm ``BinaryCrossEntropy``: the CE rule
                                            with K = number of classes (last dim)
``flip``   :math:`y(1-2\epsilon) + \epsilon`    segmentation_models_pytorch: 0 -> ε and
                                            1 -> 1 - ε (a label flipped w.p. ε)
=========  ===============================  ======================================
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _checks

__all__ = [
    "BINARY_VARIANTS",
    "VARIANTS",
    "effective_uniform_epsilon",
    "smooth_binary_labels",
    "smooth_labels",
]

VARIANTS = ("uniform", "others", "opennmt")
BINARY_VARIANTS = ("half", "uniform", "flip")


def effective_uniform_epsilon(epsilon: float, num_classes: int, variant: str) -> float:
    r"""The ε' for which the ``uniform`` rule gives the same target as ``variant`` with ε.

    ``others`` moves ε/(K-1) onto each non-target class; the uniform rule with
    :math:`\epsilon' = \epsilon K/(K-1)` moves :math:`\epsilon'/K = \epsilon/(K-1)` onto every
    class and leaves :math:`1-\epsilon'+\epsilon'/K = 1-\epsilon` on the target: the same
    distribution. This lets ``others`` run on PyTorch's fused kernel unchanged. The same holds
    for probability targets:
    :math:`(1-\epsilon)t + \frac{\epsilon}{K-1}(1-t) = (1-\epsilon')t + \epsilon'/K`.

    >>> effective_uniform_epsilon(0.1, 10, "others")
    0.1111111111111111
    """
    if variant == "uniform" or epsilon == 0.0:
        return epsilon
    return epsilon * num_classes / (num_classes - 1)


def _check_epsilon(epsilon: float, fn: str) -> float:
    return _checks.number(epsilon, "epsilon", fn, low=0.0, high=1.0)


def _positive_int(value: object, name: str, fn: str) -> int:
    v = _checks.integer(value, name, fn)
    if v < 1:
        raise ValueError(f"{fn}: {name}: expected a positive int, got {v}")
    return v


def smooth_labels(
    target: Tensor,
    num_classes: int,
    epsilon: float,
    variant: str = "uniform",
    ignore_index: int = -100,
    *,
    class_dim: int = -1,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""The smoothed target distribution for class-index targets.

    ``uniform``: :math:`q = (1-\epsilon)\,\delta_y + \epsilon/K`.
    ``others``: :math:`q = (1-\epsilon)\,\delta_y + \frac{\epsilon}{K-1}(1-\delta_y)`.
    ``opennmt``: :math:`q = (1-\epsilon)\,\delta_y + \frac{\epsilon}{K-2}(1-\delta_y-\delta_{pad})`
    with ``pad = ignore_index``, which must then be a real class in ``[0, K)``.

    Rows whose target is ``ignore_index`` are all zero in every variant, so they add
    nothing to a summed loss. Every other row sums to 1.

    Args:
        target: integer class indices, any shape.
        num_classes: K.
        epsilon: the smoothing mass ε in [0, 1].
        variant: ``'uniform'`` | ``'others'`` | ``'opennmt'``.
        ignore_index: targets equal to it give all-zero rows (the padding class for
            ``'opennmt'``).
        class_dim: where the class axis goes in the output (``-1``: last, as
            ``F.one_hot``; ``1`` to match an ``(N, C, d1, ...)`` input).
        dtype: floating dtype of the result (default: ``torch.get_default_dtype()``).

    Shape:
        target: :math:`(*)`; output: :math:`(*, K)` with the class axis moved to
        ``class_dim``.

    >>> import torch
    >>> smooth_labels(torch.tensor([0, 2]), 4, 0.3, "others")
    tensor([[0.7000, 0.1000, 0.1000, 0.1000],
            [0.1000, 0.1000, 0.7000, 0.1000]])
    >>> smooth_labels(torch.tensor([1, 0]), 4, 0.2, "opennmt", ignore_index=0)
    tensor([[0.0000, 0.8000, 0.1000, 0.1000],
            [0.0000, 0.0000, 0.0000, 0.0000]])
    """
    fn = "smooth_labels"
    _checks.one_of(variant, VARIANTS, "variant", fn)
    epsilon = _check_epsilon(epsilon, fn)
    num_classes = _positive_int(num_classes, "num_classes", fn)
    ignore_index = _checks.integer(ignore_index, "ignore_index", fn)
    minimum = {"uniform": 1, "others": 2, "opennmt": 3}[variant]
    if num_classes < minimum:
        raise ValueError(
            f"{fn}: variant {variant!r} needs num_classes >= {minimum}, got {num_classes}"
        )
    if variant == "opennmt" and not 0 <= ignore_index < num_classes:
        raise ValueError(
            f"{fn}: variant 'opennmt' needs ignore_index to be the padding class, in "
            f"[0, {num_classes - 1}], got {ignore_index} (the notes' snippet with its default "
            "-100 would zero column K-100 instead)"
        )
    target = _checks.class_indices(target, num_classes, "target", fn, ignore_index=ignore_index)
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{fn}: dtype: expected a floating dtype, got {dtype}")
    class_dim = _checks.integer(class_dim, "class_dim", fn)
    if not -(target.dim() + 1) <= class_dim <= target.dim():
        raise ValueError(
            f"{fn}: class_dim: expected a dimension of the {target.dim() + 1}-D result, in "
            f"[{-(target.dim() + 1)}, {target.dim()}], got {class_dim}"
        )

    ignored = target == ignore_index
    safe = target.masked_fill(ignored, 0)
    off = {
        "uniform": epsilon / num_classes,
        "others": epsilon / (num_classes - 1),
        "opennmt": epsilon / max(num_classes - 2, 1),
    }[variant]
    on = 1.0 - epsilon + (off if variant == "uniform" else 0.0)
    q = torch.full((*target.shape, num_classes), off, dtype=dtype, device=target.device)
    if variant == "opennmt":
        q[..., ignore_index] = 0.0
    q.scatter_(-1, safe.unsqueeze(-1), on)
    q.masked_fill_(ignored.unsqueeze(-1), 0.0)
    return q.movedim(-1, class_dim) if class_dim != -1 else q


def smooth_binary_labels(
    target: Tensor,
    epsilon: float,
    variant: str = "half",
    *,
    num_classes: int | None = None,
) -> Tensor:
    r"""Smoothed binary (or multi-label) targets in [0, 1].

    ``half``: :math:`y(1-\epsilon) + \epsilon/2` (Keras, toward 0.5).
    ``uniform``: :math:`y(1-\epsilon) + \epsilon/K`, K = ``num_classes`` or the size of the
    last dimension (timm's ``BinaryCrossEntropy``).
    ``flip``: :math:`y(1-2\epsilon) + \epsilon`: 0 -> ε, 1 -> 1 - ε
    (segmentation_models_pytorch's ``SoftBCEWithLogitsLoss``).

    Shape:
        target: :math:`(*)`, floating; output: same shape and dtype.

    >>> import torch
    >>> y = torch.tensor([0.0, 1.0])
    >>> smooth_binary_labels(y, 0.2, "half"), smooth_binary_labels(y, 0.2, "flip")
    (tensor([0.1000, 0.9000]), tensor([0.2000, 0.8000]))
    """
    fn = "smooth_binary_labels"
    _checks.one_of(variant, BINARY_VARIANTS, "variant", fn)
    epsilon = _check_epsilon(epsilon, fn)
    _checks.floating(target, "target", fn)
    _checks.values(target, _checks.PROBABILITIES, "target", fn)
    if variant == "uniform" and num_classes is not None:
        num_classes = _positive_int(num_classes, "num_classes", fn)
    if epsilon == 0.0:
        return target
    if variant == "half":
        return target * (1.0 - epsilon) + epsilon / 2
    if variant == "flip":
        return target * (1.0 - 2.0 * epsilon) + epsilon
    k = num_classes if num_classes is not None else (target.shape[-1] if target.dim() else 1)
    return target * (1.0 - epsilon) + epsilon / k
