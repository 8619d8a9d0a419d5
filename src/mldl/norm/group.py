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

    def __init__(self, num_groups: int, num_channels: int, *args, **kwargs) -> None:
        fn = "GroupNorm"
        g = _checks.integer(num_groups, "num_groups", fn, low=1)
        c = _checks.integer(num_channels, "num_channels", fn, low=1)
        if c % g:
            raise ValueError(f"{fn}: num_groups: expected a divisor of num_channels={c}, got {g}")
        super().__init__(g, c, *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        fn = "GroupNorm"
        _checks.floating(input, "input", fn)
        if input.dim() < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"{fn}: input: expected (N, {self.num_channels}, *), got {tuple(input.shape)}"
            )
        return super().forward(input)


def _check_instance_input(x: Tensor, dims: tuple[int, ...], fn: str) -> None:
    _checks.floating(x, "input", fn)
    if x.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{fn}: input: expected {want} input, got shape {tuple(x.shape)}")


class InstanceNorm1d(nn.InstanceNorm1d):
    """``torch.nn.InstanceNorm1d`` with checked input, (N, C, L) or unbatched (C, L)."""

    def forward(self, input: Tensor) -> Tensor:
        _check_instance_input(input, (2, 3), "InstanceNorm1d")
        return super().forward(input)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``torch.nn.InstanceNorm2d`` with checked input, (N, C, H, W) or unbatched (C, H, W):
    the notes' "normalize across each channel in each training example"."""

    def forward(self, input: Tensor) -> Tensor:
        _check_instance_input(input, (3, 4), "InstanceNorm2d")
        return super().forward(input)


class InstanceNorm3d(nn.InstanceNorm3d):
    """``torch.nn.InstanceNorm3d`` with checked input, (N, C, D, H, W) or unbatched."""

    def forward(self, input: Tensor) -> Tensor:
        _check_instance_input(input, (4, 5), "InstanceNorm3d")
        return super().forward(input)
