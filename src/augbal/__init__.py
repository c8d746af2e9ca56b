"""augbal: class-imbalance toolkit for image classification.

Weighted loss or resampling? Which augmentation? Which checkpoint? augbal answers
with evidence: drop-in class-aware samplers, class-conditional augmentation,
balanced dataset builds, ResNet-18 fine-tuning and benchmarks.

Subpackages are imported on first use, so ``import augbal`` stays cheap:

>>> import augbal
>>> augbal.__version__ >= "0.1"
True
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, version

# albumentations checks PyPI for a newer release when first imported; augbal never
# touches the network at import or test time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

try:
    __version__ = version("augbal")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

from augbal._draw import Draw, DrawBatch  # noqa: E402  (light: a NamedTuple and a holder, no torch)

_SUBPACKAGES = ("augment", "build", "data", "recipes", "sampling", "testing", "train")

__all__ = ["Draw", "DrawBatch", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'augbal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
