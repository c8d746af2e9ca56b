"""Class-aware sampling: the weighting family, drop-in samplers, the imbalanced-learn bridge."""

from ._weighting import (
    WEIGHTINGS,
    Deferred,
    EffectiveNumber,
    Explicit,
    Power,
    Progressive,
    Weighting,
    resolve_weighting,
)
from ._strategy import SAMPLING_STRATEGIES, check_sampling_strategy, class_counts
from ._imblearn import resample_indices
from augbal._draw import Draw, DrawBatch

from ._base import SAMPLERS, ClassSampler, SamplerBatches, SamplerReport
from ._batch import BalancedBatchSampler
from ._class_aware import ClassAwareSampler
from ._repeat_factor import RepeatFactorSampler
from ._resampled import ResampledSampler

__all__: list[str] = [
    "SAMPLERS",
    "BalancedBatchSampler",
    "ClassAwareSampler",
    "ClassSampler",
    "Draw",
    "DrawBatch",
    "RepeatFactorSampler",
    "ResampledSampler",
    "SamplerBatches",
    "SamplerReport",
    "WEIGHTINGS",
    "Deferred",
    "EffectiveNumber",
    "Explicit",
    "Power",
    "Progressive",
    "SAMPLING_STRATEGIES",
    "Weighting",
    "check_sampling_strategy",
    "class_counts",
    "resample_indices",
    "resolve_weighting",
]
