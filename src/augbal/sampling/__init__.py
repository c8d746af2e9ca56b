"""Class-aware sampling: the weighting family, drop-in samplers, the imbalanced-learn bridge."""

__all__: list[str] = []
