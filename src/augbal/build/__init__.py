"""Offline dataset builds: scan, split, plan per-class targets, write augmented copies atomically.

>>> from augbal.build import build_dataset, BuildSummary
"""

from ._build import (
    EXECUTORS,
    MANIFEST_COLUMNS,
    BuildOptionError,
    BuildSummary,
    OutputPathError,
    ResumeRefusedError,
    build_dataset,
    check_output,
    undersample_train,
)
from ._execute import Augmenter, BuildTaskError, augment_draw, run_local
from ._plan import Item, Plan, copies_per_original, make_plan
from ._ray import RayNotInstalledError, run_ray
from ._shard import MergeRefusedError, merge_shards, shard_of

__all__ = [
    "EXECUTORS",
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
    "build_dataset",
    "check_output",
    "copies_per_original",
    "make_plan",
    "merge_shards",
    "run_local",
    "run_ray",
    "shard_of",
    "undersample_train",
]
