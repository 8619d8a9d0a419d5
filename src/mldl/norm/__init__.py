"""The notes' normalization section: every layer, with a functional core, synchronisable
batch statistics, and PyTorch's kernels where PyTorch has the layer. See
``docs/normalization.md``."""

from .batch import (
    STATS,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    BatchRenorm1d,
    BatchRenorm2d,
    BatchRenorm3d,
    MeanOnlyBatchNorm1d,
    MeanOnlyBatchNorm2d,
    MeanOnlyBatchNorm3d,
    freeze_statistics,
    recompute_statistics,
)
from .group import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from .layer import LayerNorm, RMSNorm, ScaleNorm, scale_norm
from .mixed import (
    BatchInstanceNorm1d,
    BatchInstanceNorm2d,
    BatchInstanceNorm3d,
    SwitchableNorm1d,
    SwitchableNorm2d,
    SwitchableNorm3d,
)
from .reparam import init_weight_norm_, spectral_norm, spectral_sigma, weight_norm
from .sync import convert, convert_sync

__all__ = [
    "STATS",
    "BatchInstanceNorm1d",
    "BatchInstanceNorm2d",
    "BatchInstanceNorm3d",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchRenorm1d",
    "BatchRenorm2d",
    "BatchRenorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "MeanOnlyBatchNorm1d",
    "MeanOnlyBatchNorm2d",
    "MeanOnlyBatchNorm3d",
    "RMSNorm",
    "ScaleNorm",
    "SwitchableNorm1d",
    "SwitchableNorm2d",
    "SwitchableNorm3d",
    "convert",
    "convert_sync",
    "freeze_statistics",
    "init_weight_norm_",
    "recompute_statistics",
    "scale_norm",
    "spectral_norm",
    "spectral_sigma",
    "weight_norm",
]
