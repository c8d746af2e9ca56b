"""Data layer: scan image folders into an ImageIndex, load images, find labels.

>>> from augbal.data import ImageIndex, scan, demo_dataset, targets_of
"""

from ._demo import DEMO_COUNTS, demo_dataset
from ._index import ImageIndex, Problem
from ._io import load_rgb
from ._scan import IMAGE_EXTENSIONS, scan
from ._targets import targets_of

__all__ = [
    "DEMO_COUNTS",
    "IMAGE_EXTENSIONS",
    "ImageIndex",
    "Problem",
    "demo_dataset",
    "load_rgb",
    "scan",
    "targets_of",
]
