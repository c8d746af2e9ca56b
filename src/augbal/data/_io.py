"""Image loading. (Minimal first version; hardened by the data-layer issue.)"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` ``uint8`` RGB array, EXIF orientation applied.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
        >>> Image.new("L", (4, 2)).save(p)
        >>> load_rgb(p).shape
        (2, 4, 3)
    """
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
