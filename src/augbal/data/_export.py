"""Write an ``(image, label)`` dataset (e.g. torchvision's ``CIFAR10``) as an image folder."""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_image_folder(
    dataset: Any,
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write every ``(image, label)`` item of ``dataset`` to ``root/<class>/<position>.png``.

    ``dataset`` is anything with ``len()`` and ``dataset[i] -> (image, label)`` whose
    images are PIL images or ``uint8`` arrays (``H x W`` or ``H x W x 3``), such as a
    torchvision dataset built without a ``transform``. Class names come from
    ``classes`` or else ``dataset.classes`` (torchvision's attribute), in label order;
    every class gets a folder, even one without images. Files are named by their
    position in ``dataset`` (zero-padded), so a file traces back to its item, and PNG
    keeps the pixels exact. Existing files of the same name are overwritten; nothing
    is downloaded here (torchvision's ``download=True`` does that, if asked).

    Raises:
        ValueError: no class names, names that are not usable folder names (empty,
            ``.``-prefixed, containing a path separator) or repeated; a label that is
            not an integer in ``[0, len(classes))``; an item that is not an image
            (e.g. a tensor from a ``transform``). The message names the item's position.

    Example:
        >>> import tempfile
        >>> class Pairs(list):
        ...     classes = ["cat", "dog"]
        >>> data = Pairs([(np.zeros((4, 4, 3), np.uint8), 1), (np.full((4, 4), 255, np.uint8), 0)])
        >>> root = write_image_folder(data, tempfile.mkdtemp())
        >>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
        ['cat/1.png', 'dog/0.png']
    """
    from PIL import Image

    names = classes if classes is not None else getattr(dataset, "classes", None)
    if names is None or isinstance(names, str) or len(names) == 0:
        raise ValueError(f"classes must be a non-empty sequence of class names (or dataset.classes); got {names!r}")
    names = [str(n) for n in names]
    bad = [n for n in names if not n or n.startswith(".") or "/" in n or os.sep in n or "\0" in n]
    if bad:
        raise ValueError(f"class names must be usable folder names (not empty, no leading '.', no '/'); got {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct; got {names}")

    out = Path(root)
    folders = [out / name for name in names]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    width = len(str(max(n - 1, 0)))
    for i in range(n):
        image, label = dataset[i]
        try:
            k = operator.index(label)
        except TypeError:
            k = -1
        if not 0 <= k < len(names):
            raise ValueError(f"labels must be integers in [0, {len(names)}); got {label!r} at position {i}")
        if not isinstance(image, Image.Image):
            array = np.asarray(image)
            if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
                raise ValueError(
                    "images must be PIL images or uint8 HxW / HxWx3 arrays (build the dataset without a "
                    f"transform); got {type(image).__name__} of dtype {array.dtype} and shape {array.shape} at position {i}"
                )
            image = Image.fromarray(array)
        image.save(folders[k] / f"{i:0{width}d}.png", format="PNG")
    return out
