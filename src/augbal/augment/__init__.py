"""Augmentation: named policies, class-conditional and repeat-aware wrappers, batch mixers, GPU ops."""

__all__: list[str] = []
