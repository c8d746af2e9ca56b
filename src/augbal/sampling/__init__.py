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

__all__: list[str] = [
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
