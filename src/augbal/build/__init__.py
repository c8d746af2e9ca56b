"""Offline dataset builds: scan, split, plan per-class targets, write augmented copies (into OUT.incomplete, renamed when whole).

>>> from augbal.build import build_dataset, BuildSummary
"""

from ._build import (
    EXECUTORS,
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
from ._execute import Augmenter, BuildTaskError, augment_draw, output_format, run_local
from ._plan import Item, Plan, augmented_name, copies_per_original, make_plan
from ._ray import RayNotInstalledError, run_ray
from ._shard import MergeRefusedError, merge_shards, shard_of
from ._webdataset import sample_key, shard_layout

__all__ = [
    "EXECUTORS",
    "FORMATS",
    "MANIFEST_COLUMNS",
    "Augmenter",
    "BuildOptionError",
    "BuildSummary",
    "BuildTaskError",
    "Item",
    "MergeRefusedError",
    "OutputPathError",
    "ResumeRefusedError",
    "Plan",
    "RayNotInstalledError",
    "augment_draw",
    "augmented_name",
    "build_dataset",
    "check_output",
    "copies_per_original",
    "make_plan",
    "merge_shards",
    "output_format",
    "run_local",
    "run_ray",
    "sample_key",
    "shard_layout",
    "shard_of",
    "undersample_train",
]
