"""Find a dataset's class labels without decoding any image."""

from __future__ import annotations

from typing import Any

import numpy as np


def targets_of(dataset: Any) -> np.ndarray:
    """Return the integer class label of every sample of ``dataset`` as an ``int64`` array.

    Labels are read from metadata, never by calling ``__getitem__``: augbal's
    ``ImageIndex`` / datasets, torchvision ``ImageFolder`` / ``DatasetFolder``
    (``.targets``), ``torch.utils.data.Subset`` (recursively), ``ConcatDataset``,
    anything with a ``targets`` or ``labels`` attribute or a ``get_labels()`` method,
    torchvision datasets that keep ``_labels`` or ``(path, label)`` pairs in
    ``samples`` / ``imgs`` / ``_samples`` (Flowers102, GTSRB, ...), and plain sequences
    of integers (numpy arrays, lists, tuples, torch tensors).

    Example:
        >>> targets_of([0, 1, 1]).tolist()
        [0, 1, 1]
        >>> import torch
        >>> targets_of(torch.tensor([2, 0])).tolist()
        [2, 0]

    Raises:
        TypeError: when no labels can be found without loading samples.
    """
    import torch
    from torch.utils.data import ConcatDataset, Subset

    if isinstance(dataset, torch.Tensor):  # a label tensor, as a numpy array would be
        return _as_labels(dataset, "the tensor")
    if isinstance(dataset, Subset):
        return targets_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        parts = [targets_of(d) for d in dataset.datasets]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    for attr in ("targets", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            return _as_labels(values, f"{type(dataset).__name__}.{attr}")
    get_labels = getattr(dataset, "get_labels", None)
    if callable(get_labels):
        return _as_labels(get_labels(), f"{type(dataset).__name__}.get_labels()")
    # torchvision datasets that keep labels privately (Flowers102, Food101, DTD, ...) or
    # only as (path, label) pairs (DatasetFolder.samples / .imgs, GTSRB, StanfordCars).
    values = getattr(dataset, "_labels", None)
    if values is not None and not callable(values):
        return _as_labels(values, f"{type(dataset).__name__}._labels")
    for attr in ("samples", "imgs", "_samples"):
        pairs = getattr(dataset, attr, None)
        if isinstance(pairs, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            return _as_labels([p[1] for p in pairs], f"{type(dataset).__name__}.{attr}")
    if isinstance(dataset, (list, tuple, np.ndarray)):
        return _as_labels(dataset, "the sequence")
    raise TypeError(
        "targets_of needs a dataset whose labels can be read without loading images "
        "(ImageFolder, Subset, ConcatDataset, augbal ImageDataset, or anything with "
        f"`targets`, `labels`, `get_labels()` or (path, label) `samples`); got {type(dataset).__name__}"
    )


def _as_labels(values: Any, where: str) -> np.ndarray:
    try:
        import torch

        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TypeError(f"labels must be one integer per sample (a 1-d array); {where} has shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"labels must be integers; {where} has dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)
