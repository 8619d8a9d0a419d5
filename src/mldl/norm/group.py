r"""Per-sample normalizations over channels: GroupNorm and InstanceNorm (PyTorch's kernels,
with checked input).

GroupNorm splits the C channels of each sample into G groups and normalises each group over
its channels and spatial positions; G = 1 is LayerNorm over (C, H, W), G = C is
InstanceNorm (the notes: "when we put all the channels into a single group, group
normalization becomes layer normalization and when we put each channel into a different
group it becomes instance normalization").
"""

from __future__ import annotations

from torch import Tensor, nn

from .. import _checks

__all__ = ["GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]


class GroupNorm(nn.GroupNorm):
    """``torch.nn.GroupNorm`` with checked input (N, C, *) and a clear error when
    ``num_channels`` is not a multiple of ``num_groups``."""

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, *args, **kwargs
    ) -> None:
        fn = "GroupNorm"
        g = _checks.integer(num_groups, "num_groups", fn, low=1)
        c = _checks.integer(num_channels, "num_channels", fn, low=1)
        if c % g:
            raise ValueError(f"{fn}: num_groups: expected a divisor of num_channels={c}, got {g}")
        eps = _checks.number(eps, "eps", fn, low=0.0, low_open=True)
        super().__init__(g, c, eps, *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        fn = "GroupNorm"
        _checks.floating(input, "input", fn)
        if input.dim() < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"{fn}: input: expected (N, {self.num_channels}, *), got {tuple(input.shape)}"
            )
        return super().forward(input)


class _CheckedInstanceNorm:
    """Constructor and input checks shared by the three InstanceNorm classes."""

    _dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        *args,
        **kwargs,
    ) -> None:
        fn = type(self).__name__
        num_features = _checks.integer(num_features, "num_features", fn, low=1)
        eps = _checks.number(eps, "eps", fn, low=0.0, low_open=True)
        if momentum is not None:
            momentum = _checks.number(momentum, "momentum", fn, low=0.0, high=1.0)
        super().__init__(num_features, eps, momentum, *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        fn = type(self).__name__
        _checks.floating(input, "input", fn)
        if input.dim() not in self._dims:
            want = " or ".join(f"{d}-D" for d in self._dims)
            raise ValueError(f"{fn}: input: expected {want} input, got shape {tuple(input.shape)}")
        channels = input.shape[0 if input.dim() == self._dims[0] else 1]
        if (self.affine or self.track_running_stats) and channels != self.num_features:
            raise ValueError(
                f"{fn}: input: expected {self.num_features} channels, got {channels} in shape "
                f"{tuple(input.shape)}"
            )
        return super().forward(input)


class InstanceNorm1d(_CheckedInstanceNorm, nn.InstanceNorm1d):
    """``torch.nn.InstanceNorm1d`` with checked options and input, (N, C, L) or (C, L)."""

    _dims = (2, 3)


class InstanceNorm2d(_CheckedInstanceNorm, nn.InstanceNorm2d):
    """``torch.nn.InstanceNorm2d`` with checked options and input, (N, C, H, W) or
    unbatched (C, H, W): the notes' "normalize across each channel in each training
    example"."""

    _dims = (3, 4)


class InstanceNorm3d(_CheckedInstanceNorm, nn.InstanceNorm3d):
    """``torch.nn.InstanceNorm3d`` with checked options and input, (N, C, D, H, W) or
    unbatched."""

    _dims = (4, 5)
