"""Offline dataset builds: scan, split, plan per-class targets, write augmented copies atomically.

>>> from augbal.build import build_dataset, BuildSummary
"""

from ._build import (
    FORMATS,
    MANIFEST_COLUMNS,
    BuildOptionError,
    BuildSummary,
    OutputPathError,
    ResumeRefusedError,
    build_dataset,
    check_output,
    undersample_train,
)
from ._execute import Augmenter, augment_draw, output_format
from ._plan import Item, Plan, augmented_name, copies_per_original, make_plan
from ._webdataset import sample_key, shard_layout

__all__ = [
    "FORMATS",
    "MANIFEST_COLUMNS",
    "Augmenter",
    "BuildOptionError",
    "BuildSummary",
    "Item",
    "OutputPathError",
    "ResumeRefusedError",
    "Plan",
    "augment_draw",
    "augmented_name",
    "build_dataset",
    "check_output",
    "copies_per_original",
    "make_plan",
    "output_format",
    "sample_key",
    "shard_layout",
    "undersample_train",
]
