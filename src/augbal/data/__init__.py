"""Data layer: scan image folders into an ImageIndex, load images, find labels.

>>> from augbal.data import ImageIndex, scan, demo_dataset, targets_of
"""

from ._demo import DEMO_COUNTS, demo_dataset
from ._duplicates import DuplicateReport, find_duplicates
from ._errors import (
    DuplicateClassError,
    EmptyClassError,
    EmptyManifestError,
    NoClassFoldersError,
    ScanSourceError,
    UnknownFormatError,
)
from ._export import write_image_folder
from ._index import ImageIndex, Problem
from ._io import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS, ImageLoadError, check_formats, load_rgb
from ._manifest import MANIFEST_PROBLEM_KINDS, LabelCaseWarning, parse_manifest, read_manifest, write_manifest
from ._problems import write_problems
from ._scan import IMAGE_EXTENSIONS, FewImagesWarning, scan
from ._skew import long_tail_counts, select_classes, skew
from ._splits import Split, split
from ._targets import targets_of

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEMO_COUNTS",
    "DuplicateClassError",
    "DuplicateReport",
    "EmptyClassError",
    "EmptyManifestError",
    "FewImagesWarning",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "ImageIndex",
    "ImageLoadError",
    "LabelCaseWarning",
    "NoClassFoldersError",
    "Problem",
    "ScanSourceError",
    "Split",
    "UnknownFormatError",
    "check_formats",
    "demo_dataset",
    "find_duplicates",
    "load_rgb",
    "long_tail_counts",
    "MANIFEST_PROBLEM_KINDS",
    "parse_manifest",
    "read_manifest",
    "scan",
    "select_classes",
    "skew",
    "split",
    "targets_of",
    "write_image_folder",
    "write_manifest",
    "write_problems",
]


def __getattr__(name: str):
    # ImageDataset subclasses torch's Dataset: import torch only when it is first used,
    # so `import augbal.data` (and the scan CLI) stays cheap.
    if name == "ImageDataset":
        from ._dataset import ImageDataset

        return ImageDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
