"""Offline dataset builds: scan, split, plan per-class targets, write augmented copies atomically.

>>> from augbal.build import build_dataset, BuildSummary
"""

from ._build import (
    MANIFEST_COLUMNS,
    BuildOptionError,
    BuildSummary,
    OutputPathError,
    ResumeRefusedError,
    build_dataset,
    check_output,
    undersample_train,
)
from ._execute import Augmenter, augment_draw
from ._plan import Item, Plan, copies_per_original, make_plan

__all__ = [
    "MANIFEST_COLUMNS",
    "Augmenter",
    "BuildOptionError",
    "BuildSummary",
    "Item",
    "OutputPathError",
    "ResumeRefusedError",
    "Plan",
    "augment_draw",
    "build_dataset",
    "check_output",
    "copies_per_original",
    "make_plan",
    "undersample_train",
]
