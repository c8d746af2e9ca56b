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

__all__: list[str] = [
    "WEIGHTINGS",
    "Deferred",
    "EffectiveNumber",
    "Explicit",
    "Power",
    "Progressive",
    "Weighting",
    "resolve_weighting",
]
