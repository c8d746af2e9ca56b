"""ImageDataset: a torch Dataset over an ImageIndex, aware of augbal's ``Draw`` sample keys."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .._draw import Draw, DrawBatch
from ._index import ImageIndex
from ._io import load_rgb


class ImageDataset(Dataset):
    """The images of an ``ImageIndex`` as a map-style torch ``Dataset`` of ``(image, label)``.

    ``dataset[key]`` accepts a plain integer or an ``augbal.Draw`` (what samplers built
    with ``yield_draws=True`` yield); ``__getitems__`` (which a DataLoader calls with each
    batch) also accepts whole index arrays and ``augbal.DrawBatch`` batches, what
    ``sampler.batches(batch_size)`` yields. The image is ``loader(path)`` (default
    :func:`augbal.data.load_rgb`: an ``(H, W, 3)`` ``uint8`` array), then ``transform``:

    - a plain callable is called as ``transform(image)``;
    - a transform with ``wants_context = True`` (augbal augmentation policies) is called
      as ``transform(image, label=label, draw=draw)``, where ``draw`` is the ``Draw`` key,
      or ``None`` for an integer key.

    Labels (``targets``) come from the index, so reading them decodes nothing. The
    dataset holds only numpy arrays and the two callables: it pickles, opens no file
    until an item is read, and is safe in ``DataLoader`` workers.

    Example:
        >>> import tempfile
        >>> from augbal.data import demo_dataset, scan
        >>> ds = ImageDataset(scan(demo_dataset(tempfile.mkdtemp())))
        >>> len(ds), ds.classes, ds.targets[:3].tolist()
        (840, ['cat', 'deer', 'dog'], [0, 0, 0])
        >>> image, label = ds[Draw(index=100, repeat=1)]
        >>> image.shape, label
        ((32, 32, 3), 1)

    Raises:
        OSError: from ``__getitem__`` when the file cannot be loaded; the message names it.
    """

    def __init__(
        self,
        index: ImageIndex,
        transform: Callable[..., Any] | None = None,
        *,
        loader: Callable[[str], Any] = load_rgb,
    ) -> None:
        if not isinstance(index, ImageIndex):
            raise TypeError(f"ImageDataset needs an augbal ImageIndex (see augbal.data.scan); got {type(index).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        if not callable(loader):
            raise TypeError(f"loader must be callable; got {type(loader).__name__}")
        self.index = index
        self.transform = transform
        self.loader = loader

    @property
    def targets(self) -> np.ndarray:
        """Integer label of every sample (``int64``), read from the index, nothing decoded."""
        return self.index.labels

    @property
    def classes(self) -> list[str]:
        """Class names, ``classes[label]`` (the torchvision ``ImageFolder`` convention)."""
        return list(self.index.classes)

    def class_counts(self) -> np.ndarray:
        """Number of samples per class (``int64``)."""
        return self.index.class_counts()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | Draw) -> tuple[Any, int]:
        if isinstance(key, Draw):
            draw: Draw | None = key
            i = key.index
        else:
            draw = None
            i = key
        if isinstance(i, (bool, np.bool_)):
            raise TypeError(f"ImageDataset keys are an int or an augbal Draw; got {type(key).__name__}")
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"ImageDataset keys are an int or an augbal Draw; got {type(key).__name__}") from None
        n = len(self.index)
        if not -n <= i < n:
            raise IndexError(f"sample index must lie in [0, {n}); got {i}")
        return self._get(i % n, draw)

    def __getitems__(self, keys: Any) -> list[tuple[Any, int]]:
        """A batch of samples, as ``[dataset[k] for k in keys]`` would give them.

        ``keys`` is what a DataLoader's ``batch_sampler`` yields: a list of ints or Draws,
        an integer numpy array or torch tensor (``sampler.batches(...)``), or an
        ``augbal.DrawBatch`` (``sampler.batches(...)`` with ``yield_draws=True``), whose
        draws reach the transform as ``__getitem__`` passes a ``Draw``. Arrays are checked
        whole and never turned into a Python int per sample before loading.
        """
        if isinstance(keys, DrawBatch):
            idx = self._checked_indices(keys.index, keys)
            return [self._get(i, draw) for i, draw in zip(idx.tolist(), keys)]
        if not isinstance(keys, np.ndarray):
            try:
                import torch

                if isinstance(keys, torch.Tensor):
                    keys = keys.detach().cpu().numpy()
            except ImportError:  # pragma: no cover - torch is a dependency
                pass
        if isinstance(keys, np.ndarray):
            return [self._get(i, None) for i in self._checked_indices(keys, keys).tolist()]
        return [self[k] for k in keys]

    def _checked_indices(self, index: Any, keys: Any) -> np.ndarray:
        arr = np.asarray(index)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                "ImageDataset batch keys are ints, Draws, a 1-d integer array or tensor, or an augbal "
                f"DrawBatch; got {type(keys).__name__} of dtype {arr.dtype} and shape {arr.shape}"
            )
        n = len(self.index)
        if arr.size and not (-n <= int(arr.min()) and int(arr.max()) < n):
            bad = int(arr.min()) if int(arr.min()) < -n else int(arr.max())
            raise IndexError(f"sample index must lie in [0, {n}); got {bad}")
        return arr % n if arr.size and int(arr.min()) < 0 else arr

    def _get(self, i: int, draw: Draw | None) -> tuple[Any, int]:
        path = str(self.index.paths[i])
        label = int(self.index.labels[i])
        try:
            image = self.loader(path)
        except Exception as exc:
            raise OSError(f"cannot load sample {i} ({path}): {exc}") from exc
        if self.transform is None:
            return image, label
        if getattr(self.transform, "wants_context", False) is True:
            return self.transform(image, label=label, draw=draw), label
        return self.transform(image), label

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}={n}" for c, n in zip(self.index.classes, self.index.class_counts().tolist()))
        return f"ImageDataset({len(self)} images: {counts}; transform={self.transform!r})"
