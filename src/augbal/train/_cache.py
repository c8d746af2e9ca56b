"""Feature and activation caches: compute the frozen part of a ResNet-18 once, train on the cache.

With a frozen backbone, every epoch of head training recomputes the same features. This
module splits the network at a stage (:func:`trunk` + :func:`tail`, with
``tail(trunk(x)) == model(x)``), computes the trunk's output of every image once per
*view* and stores it on disk (:class:`FeatureCache`), keyed by

    (weights hash, trunk structure, ``upto``, policy spec, storage dtype) -> one folder,
    view k -> one subfolder, image content hash (+ label for a policy) -> one row,

so every run of a benchmark grid (strategies x seeds) over the same images reuses the
rows it finds and computes only the missing ones. :class:`CachedViews` is the map-style
dataset the loop trains on: the draw with repeat ``k`` in epoch ``e`` reads view
``(k + e) mod K``, so the repeats of a minority image that a sampler built with
``yield_draws=True`` makes see different augmented views, and every epoch shifts them.

Storage: ``root/<key>/meta.json`` describes the key; ``root/<key>/view-<k>/`` holds
chunks, each one ``.npy`` block of rows (memory-mappable, ``float16`` by default) and a
``.json`` naming its rows. A chunk is written as a new file and renamed into place
(``augbal._atomic``), ``.npy`` first, ``.json`` last; readers only see chunks whose
``.json`` exists. Concurrent runs sharing a root therefore never corrupt each other:
at worst two of them compute the same rows, and the first chunk (by name) wins.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augbal._atomic import atomic_write, atomic_write_text
from augbal._draw import Draw, DrawBatch
from augbal._validation import check_bool, check_choice, check_int, is_int

__all__ = ["UPTO", "CachedViews", "FeatureCache", "tail", "trunk"]

#: Where a trunk may end: after a stage (its activations) or ``"features"`` (layer4 + avgpool + flatten).
UPTO = ("stem", "layer1", "layer2", "layer3", "features")

_LAYOUT_VERSION = 1
_DTYPES = ("float16", "float32")


# --------------------------------------------------------------------------- trunk / tail


def _parts(model: nn.Module) -> list[nn.Module]:
    """The ResNet's modules in forward order: the stages of ``stage_modules`` with avgpool before the head.

    A DDP / ``AveragedModel`` / ``torch.compile`` wrapper is looked through, as ``stage_modules`` does.
    """
    from augbal.train._model import _unwrap, stage_modules

    stages = stage_modules(model)  # TypeError for a model without a ResNet's stages
    avgpool = getattr(_unwrap(model), "avgpool", None)
    if not isinstance(avgpool, nn.Module):
        raise TypeError(f"trunk/tail need a torchvision ResNet with avgpool; {type(model).__name__} has none")
    body = [m for name in ("stem", "layer1", "layer2", "layer3", "layer4") for m in stages[name]]
    return [*body, avgpool, *stages["head"]]


def _split_at(upto: str) -> int:
    """How many of ``_RESNET_PARTS`` (plus the flatten) the trunk ending at ``upto`` holds."""
    check_choice("upto", upto, UPTO)
    return {"stem": 4, "layer1": 5, "layer2": 6, "layer3": 7, "features": 9}[upto]


def trunk(model: nn.Module, upto: str) -> nn.Sequential:
    """The frozen front of ``model``, through stage ``upto``, sharing its modules.

    Stages as in ``augbal.train.stage_modules`` (stem = conv1 + bn1 + relu + maxpool; a
    DDP / ``AveragedModel`` / ``torch.compile`` wrapper is looked through).

    ``upto="features"``: stem .. layer4 + avgpool + flatten, ``(N, 512)``; ``"layer3"``:
    stem .. layer3, ``(N, 256, h, w)``; also ``"stem"``, ``"layer1"``, ``"layer2"``.
    ``tail(model, upto)`` is the rest, and ``tail(trunk(x)) == model(x)`` exactly.

    Example:
        >>> import torch, torchvision
        >>> m = torchvision.models.resnet18(num_classes=3).eval()
        >>> x = torch.randn(2, 3, 32, 32)
        >>> tuple(trunk(m, "layer3")(x).shape), tuple(trunk(m, "features")(x).shape)
        ((2, 256, 2, 2), (2, 512))
        >>> bool(torch.equal(tail(m, "layer3")(trunk(m, "layer3")(x)), m(x)))
        True
    """
    n = _split_at(upto)
    modules = _parts(model)[:n]
    if upto == "features":
        modules.append(nn.Flatten(1))
    return nn.Sequential(*modules)


def tail(model: nn.Module, start: str) -> nn.Sequential:
    """The part of ``model`` after ``trunk(model, start)``, sharing its modules.

    ``start="features"``: the head (``model.fc``); ``"layer3"``: layer4 + avgpool +
    flatten + head. See :func:`trunk`.

    Example:
        >>> import torchvision
        >>> m = torchvision.models.resnet18(num_classes=3)
        >>> [type(x).__name__ for x in tail(m, "layer3")]
        ['Sequential', 'AdaptiveAvgPool2d', 'Flatten', 'Linear']
    """
    n = _split_at(start)
    parts = _parts(model)
    if start == "features":
        return nn.Sequential(parts[-1])
    modules = [*parts[n:-1], nn.Flatten(1), parts[-1]]
    return nn.Sequential(*modules)


# --------------------------------------------------------------------------- the dataset


class CachedViews(torch.utils.data.Dataset):
    """A map-style dataset over cached trunk outputs: ``K`` views of ``N`` images.

    Keys are what augbal samplers yield: an int ``i`` reads view ``epoch mod K`` of
    image ``i`` (``epoch`` as set by :meth:`set_epoch`); a ``Draw(i, repeat=k, epoch=e)``
    reads view ``(k + e) mod K``, so the k-th repeat of an image in an epoch sees its own
    view and the views rotate across epochs. ``__getitems__`` takes a whole batch (a
    ``DrawBatch``, an int array/tensor or a list of keys) and returns
    ``(features float32 (B, ...), labels int64 (B,))`` on the data's device; with a
    DataLoader pass ``collate_fn=CachedViews.collate`` (the batch is already collated).

    Args:
        data: ``(K, N, ...)`` tensor of the stored rows (any float dtype; read as float32),
            or the memory-mapped rows ``FeatureCache.views(..., in_memory=False)`` gives.
        labels: ``N`` class indices (``-1`` when unknown).
        report: what building the views did (``FeatureCache.views`` fills it).

    Example:
        >>> import torch
        >>> from augbal._draw import Draw, DrawBatch
        >>> views = CachedViews(torch.arange(12.).reshape(3, 4, 1), [0, 1, 1, 0])
        >>> x, y = views.__getitems__(DrawBatch(np.array([1, 1, 2]), np.array([0, 1, 0]), epoch=1))
        >>> x[:, 0].tolist(), y.tolist()      # views (0+1)%3=1, (1+1)%3=2, 1
        ([5.0, 9.0, 6.0], [1, 1, 1])
    """

    def __init__(self, data: torch.Tensor | _MappedRows, labels: Any, *, report: Mapping[str, Any] | None = None) -> None:
        if not isinstance(data, (torch.Tensor, _MappedRows)) or data.ndim < 2:
            raise TypeError(f"data must be a (K, N, ...) tensor; got {type(data).__name__} {getattr(data, 'shape', '')}")
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        if y.shape[0] != data.shape[1]:
            raise ValueError(f"labels must have one entry per image ({data.shape[1]}); got {y.shape[0]}")
        self.data = data
        self.labels = y
        self.report = dict(report or {})
        self.epoch = 0
        self._labels_t = torch.from_numpy(y).to(data.device)

    # -- sampler-facing attributes -------------------------------------------------
    @property
    def targets(self) -> np.ndarray:
        """The labels (the name torchvision datasets and augbal samplers read)."""
        return self.labels

    @property
    def num_views(self) -> int:
        """``K``: how many views of every image are cached."""
        return int(self.data.shape[0])

    @property
    def device(self) -> torch.device:
        return self.data.device

    def __len__(self) -> int:
        return int(self.data.shape[1])

    def set_epoch(self, epoch: int) -> None:
        """The epoch plain integer keys read (view ``epoch mod K``)."""
        self.epoch = check_int("epoch", epoch, low=0)  # type: ignore[assignment]

    def view_of(self, repeat: int, epoch: int) -> int:
        """The view a draw with ``repeat`` in ``epoch`` reads: ``(repeat + epoch) mod K``.

        Example:
            >>> CachedViews(torch.zeros(4, 1, 2), [0]).view_of(3, 2)
            1
        """
        return (int(repeat) + int(epoch)) % self.num_views

    # -- reading -------------------------------------------------------------------
    def __getitem__(self, key: int | Draw) -> tuple[torch.Tensor, int]:
        """One sample ``(features float32, label)``; ``key`` an int or a ``Draw``."""
        if isinstance(key, Draw):
            index, view = key.index, self.view_of(key.repeat, key.epoch)
        elif is_int(key):
            index, view = int(key), self.epoch % self.num_views
        else:
            raise TypeError(f"CachedViews keys are ints or augbal Draws; got {type(key).__name__} {key!r}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample index must lie in [0, {n}); got {index}")
        return self.data[view, index].float(), int(self.labels[index])

    def __getitems__(self, keys: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch ``(features float32 (B, ...), labels int64 (B,))`` for ``keys``.

        ``keys``: a ``DrawBatch``, a 1-d integer numpy array or tensor, or a list of ints /
        ``Draw`` items.
        """
        if isinstance(keys, DrawBatch):
            index = np.asarray(keys.index, dtype=np.int64)
            views = (np.asarray(keys.repeat, dtype=np.int64) + keys.epoch) % self.num_views
        elif isinstance(keys, (np.ndarray, torch.Tensor)):
            arr = keys.detach().cpu().numpy() if isinstance(keys, torch.Tensor) else keys
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"index arrays must be 1-d integers; got dtype {arr.dtype}, shape {arr.shape}")
            index = arr.astype(np.int64, copy=False)
            views = np.full(index.shape, self.epoch % self.num_views, dtype=np.int64)
        elif isinstance(keys, Sequence):
            pairs = []
            for key in keys:
                if isinstance(key, Draw):
                    pairs.append((key.index, self.view_of(key.repeat, key.epoch)))
                elif is_int(key):
                    pairs.append((int(key), self.epoch % self.num_views))
                else:
                    raise TypeError(f"CachedViews keys are ints or augbal Draws; got {type(key).__name__} {key!r}")
            index = np.array([p[0] for p in pairs], dtype=np.int64)
            views = np.array([p[1] for p in pairs], dtype=np.int64)
        else:
            raise TypeError(
                f"CachedViews batches are a DrawBatch, an integer array or a list of keys; got {type(keys).__name__}"
            )
        n = len(self)
        if index.size and not (-n <= int(index.min()) and int(index.max()) < n):
            bad = int(index.min()) if int(index.min()) < -n else int(index.max())
            raise IndexError(f"sample index must lie in [0, {n}); got {bad}")
        index %= max(n, 1)
        i = torch.from_numpy(index).to(self.data.device)
        v = torch.from_numpy(views).to(self.data.device)
        return self.data[v, i].float(), self._labels_t[i]

    @staticmethod
    def collate(batch: Any) -> Any:
        """The DataLoader ``collate_fn`` for batches from ``__getitems__`` (returns them as they are)."""
        return batch

    def features(self, view: int = 0) -> torch.Tensor:
        """All ``N`` rows of one view as float32 (for feature-space resampling or cRT)."""
        check_int("view", view, low=0, high=self.num_views - 1)
        return self.data[view].float()

    def to(self, device: str | torch.device) -> CachedViews:
        """The same views held on ``device`` (a GPU-resident dataset for small sets; memory-mapped
        rows are read into memory)."""
        out = CachedViews(self.data.to(device), self.labels, report=self.report)
        out.epoch = self.epoch
        return out

    def __repr__(self) -> str:
        return (
            f"CachedViews(views={self.num_views}, images={len(self)}, shape={tuple(self.data.shape[2:])}, "
            f"dtype={self.data.dtype}, device={self.data.device}"
            + (", memory-mapped)" if isinstance(self.data, _MappedRows) else ")")
        )


# --------------------------------------------------------------------------- the cache


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b-128 hex digest of a file's bytes: the hash ``augbal.data.scan`` stores in ``ImageIndex.hashes``.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.bin"); _ = open(p, "wb").write(b"abc")
        >>> content_hash(p)
        'cf4ab791c62b8d2b2109c90275287816'
    """
    with open(path, "rb") as fh:
        return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return len(text) >= 8


class FeatureCache:
    """Trunk outputs of images, on disk under ``root``, reused across runs.

    Args:
        root: the cache folder (created on first write); several runs may share it.
        dtype: storage dtype, ``"float16"`` (default: half the disk and memory; ReLU
            activations and pooled features lose nothing a head notices) or ``"float32"``.
        chunk_rows: rows per stored chunk (an interrupted computation keeps its full chunks).

    Example:
        >>> import tempfile, torchvision
        >>> from augbal.data import demo_dataset, scan
        >>> index = scan(demo_dataset(tempfile.mkdtemp())).subset(range(0, 840, 40))
        >>> model = torchvision.models.resnet18(num_classes=3)
        >>> cache = FeatureCache(tempfile.mkdtemp())
        >>> views = cache.views(model, "0" * 64, index, upto="features")
        >>> views, views.report["computed"]
        (CachedViews(views=1, images=21, shape=(512,), dtype=torch.float16, device=cpu), 21)
        >>> cache.views(model, "0" * 64, index, upto="features").report["computed"]
        0
    """

    def __init__(self, root: str | os.PathLike[str], *, dtype: str = "float16", chunk_rows: int = 8192) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a folder path; got {type(root).__name__}")
        check_choice("dtype", dtype, _DTYPES)
        check_int("chunk_rows", chunk_rows, low=1)
        self.root = Path(root)
        self.dtype = dtype
        self.chunk_rows = int(chunk_rows)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, dtype={self.dtype!r})"

    # -- the public method ---------------------------------------------------------
    def views(
        self,
        model: nn.Module,
        weights_sha256: str,
        items: Any,
        *,
        upto: str,
        policy: Any = None,
        num_views: int = 1,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        loader: Callable[[str], Any] | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        progress: bool = False,
        in_memory: bool = True,
    ) -> CachedViews:
        """The ``num_views`` cached views of ``items`` through ``trunk(model, upto)``.

        Rows already stored under the same key are read (no forward pass); the missing
        ones are computed in batches (model copy in eval mode, ``torch.inference_mode``;
        on CUDA bf16 autocast and channels_last) and appended as new chunks.

        Args:
            model: a torchvision-style ResNet (see :func:`trunk`); it is not modified.
            weights_sha256: the hash of the weights the trunk holds (``WeightsInfo.sha256``):
                the caller vouches that it identifies them; a trained trunk needs its own.
            items: an ``augbal.data.ImageIndex`` (paths, labels, content hashes) or a
                sequence of ``(path, content_hash)`` pairs (or bare paths); a missing hash
                is computed from the file bytes (:func:`content_hash`).
            upto: where the trunk ends, one of :data:`UPTO` (``"features"`` or ``"layer3"``).
            policy: the augmentation policy (an augbal ``Policy``, its spec or name) that
                turns an image into the model input; view ``k`` of an image is
                ``policy(image, label=label, draw=Draw(h, repeat=k))`` where ``h`` comes
                from the image's content hash, so the same image gets the same view ``k``
                in any split, run or seed. Pass the eval policy for a deterministic
                transform (``build_policy("none", size=..., mean=..., std=...)``). ``None``:
                the loaded ``(H, W, 3)`` uint8 image scaled to ``0..1``, nothing else.
                A deterministic policy (``policy.deterministic``) or ``None`` stores one view.
            num_views: ``K``, the views cached per image.
            batch_size: images per forward pass.
            device: where the trunk runs.
            loader: ``path -> image`` (default :func:`augbal.data.load_rgb`).
            labels: the class of every item when ``items`` is a sequence (default ``-1``).
            progress: show a rich progress bar while computing.
            in_memory: read the rows into one ``(K, N, ...)`` tensor (``K x N x row bytes``
                of memory); ``False`` leaves them in the memory-mapped chunks and reads each
                batch's rows on demand (for sets larger than memory; CPU only).

        Raises:
            ValueError: bad arguments (the message names the argument and the value).
            TypeError: a model that is not a torchvision-style ResNet, a policy without a spec.
        """
        if not isinstance(weights_sha256, str) or not _is_hex(weights_sha256):
            raise ValueError(
                "weights_sha256 must be the hex digest of the trunk's weights (WeightsInfo.sha256; random "
                f"weights have none, so they cannot be cached); got {weights_sha256!r}"
            )
        check_choice("upto", upto, UPTO)
        check_int("num_views", num_views, low=1)
        check_int("batch_size", batch_size, low=1)
        check_bool("progress", progress)
        check_bool("in_memory", in_memory)
        device = torch.device(device)
        if loader is None:
            from augbal.data import load_rgb

            loader = load_rgb
        if not callable(loader):
            raise TypeError(f"loader must be callable (path -> image); got {type(loader).__name__}")
        policy = _resolve_policy(policy)
        paths, hashes, ys = _items(items, labels)
        return self._views(
            model, weights_sha256.lower(), paths, hashes, ys, upto, policy, int(num_views),
            int(batch_size), device, loader, progress, in_memory,
        )  # fmt: skip

    # -- the hook --------------------------------------------------------------------
    def _views(
        self,
        model: nn.Module,
        weights: str,
        paths: list[str],
        hashes: list[str],
        labels: np.ndarray,
        upto: str,
        policy: Any,
        num_views: int,
        batch_size: int,
        device: torch.device,
        loader: Callable[[str], Any],
        progress: bool,
        in_memory: bool,
    ) -> CachedViews:
        start = time.perf_counter()
        front = trunk(model, upto)
        spec = None if policy is None else policy.to_dict()
        key_data = {
            "layout": _LAYOUT_VERSION,
            "weights_sha256": weights,
            "trunk": hashlib.sha256(repr(front).encode()).hexdigest()[:16],
            "upto": upto,
            "policy": spec,
            "dtype": self.dtype,
        }
        key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:24]
        folder = self.root / key
        if not (folder / "meta.json").is_file():
            atomic_write_text(folder / "meta.json", json.dumps(key_data, indent=1, sort_keys=True) + "\n", fsync=False)
        deterministic = policy is None or bool(getattr(policy, "deterministic", False))
        stored_views = 1 if deterministic else num_views
        # a policy may depend on the label (class-conditional): its rows are keyed by label too
        rows = hashes if policy is None else [f"{h}:{y}" for h, y in zip(hashes, labels.tolist())]
        computer = _Computer(front, device, batch_size, loader, policy, progress)
        blocks, computed = [], 0
        for k in range(stored_views):
            vdir = folder / f"view-{k:03d}"
            found = _read_index(vdir)
            missing = sorted({r for r in rows if r not in found})
            if missing:
                where = {r: i for i, r in enumerate(rows)}  # a row key -> one item holding it
                for chunk_rows, block in computer.run(
                    [paths[where[r]] for r in missing],
                    [hashes[where[r]] for r in missing],
                    [int(labels[where[r]]) for r in missing],
                    missing,
                    k,
                    self.chunk_rows,
                    np.dtype(self.dtype),
                ):
                    _write_chunk(vdir, chunk_rows, block)
                    computed += len(chunk_rows)
                found = _read_index(vdir)
            blocks.append(_gather(found, rows) if in_memory else _locate(found, rows))
        if in_memory:
            data: torch.Tensor | _MappedRows = torch.from_numpy(np.stack(blocks))
            if stored_views < num_views:  # identical views: one stored, K read (no copy)
                data = data.expand(num_views, *data.shape[1:])  # type: ignore[union-attr]
        else:
            data = _MappedRows(blocks * (num_views // stored_views))
        report = {
            "key": key,
            "folder": str(folder),
            "images": len(rows),
            "views": num_views,
            "stored_views": stored_views,
            "computed": computed,
            "reused": len(set(rows)) * stored_views - computed,
            "seconds": round(time.perf_counter() - start, 3),
            "forward_seconds": round(computer.seconds, 3),
        }
        return CachedViews(data, labels, report=report)


# --------------------------------------------------------------------------- helpers


def _resolve_policy(policy: Any) -> Any:
    if policy is None:
        return None
    if isinstance(policy, (str, Mapping)):
        from augbal.augment import build_policy

        return build_policy(policy)
    if not callable(policy) or not callable(getattr(policy, "to_dict", None)):
        raise TypeError(
            "policy must be an augbal policy (callable with a to_dict() spec), its spec or name, or None; "
            f"got {type(policy).__name__}"
        )
    return policy


def _items(items: Any, labels: Any) -> tuple[list[str], list[str], np.ndarray]:
    """Paths, content hashes and labels of ``items`` (hashes computed where missing)."""
    from augbal.data import ImageIndex

    if isinstance(items, ImageIndex):
        if labels is not None:
            raise ValueError("labels= is for a sequence of items; an ImageIndex carries its own labels")
        paths = [str(p) for p in items.paths.tolist()]
        hashes = [str(h) for h in items.hashes.tolist()]
        ys = items.labels.astype(np.int64)
    elif isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        paths, hashes = [], []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                path, digest = item, ""
            elif isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], (str, os.PathLike)):
                path, digest = item[0], item[1] or ""
            else:
                raise ValueError(f"items must be (path, content_hash) pairs or paths; item {i} is {item!r}")
            if not isinstance(digest, str):
                raise ValueError(f"a content hash must be a hex string; item {i} has {digest!r}")
            paths.append(os.fspath(path))
            hashes.append(digest)
        if labels is None:
            ys = np.full(len(paths), -1, dtype=np.int64)
        else:
            ys = np.asarray(labels).reshape(-1)
            if ys.shape[0] != len(paths) or (ys.size and not np.issubdtype(ys.dtype, np.integer)):
                raise ValueError(f"labels must be {len(paths)} integers, one per item; got {labels!r}")
            ys = ys.astype(np.int64)
    else:
        raise TypeError(f"items must be an augbal ImageIndex or a sequence of (path, hash); got {type(items).__name__}")
    for i, digest in enumerate(hashes):
        if not digest:
            hashes[i] = content_hash(paths[i])
        elif not _is_hex(digest):
            raise ValueError(f"a content hash must be a hex string of >= 8 digits; got {digest!r} for {paths[i]}")
        else:
            hashes[i] = digest.lower()
    return paths, hashes, ys


class _Computer:
    """Runs the trunk over images: a frozen, eval-mode copy on ``device``."""

    def __init__(self, front: nn.Module, device: torch.device, batch_size: int, loader, policy, progress: bool):
        self.front, self.device, self.batch_size = front, device, batch_size
        self.loader, self.policy, self.progress = loader, policy, progress
        self.seconds = 0.0
        self._model: nn.Module | None = None

    def model(self) -> nn.Module:
        if self._model is None:
            m = copy.deepcopy(self.front).to(self.device).eval().requires_grad_(False)
            if self.device.type == "cuda":
                m = m.to(memory_format=torch.channels_last)
            self._model = m
        return self._model

    def image(self, path: str, digest: str, label: int, view: int) -> torch.Tensor:
        image = self.loader(path)
        if self.policy is None:
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"without a policy, loader must give (H, W, 3) uint8 images; {path} gave {array.shape}")
            return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255)
        draw = Draw(int(digest[:16], 16), repeat=view, epoch=0)
        out = self.policy(image, label=None if label < 0 else label, draw=draw)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the policy must return a tensor; got {type(out).__name__} for {path}")
        return out

    def run(self, paths, hashes, labels, rows, view, chunk_rows, dtype):
        """Yield ``(row keys, block)`` chunks of at most ``chunk_rows`` rows."""
        model = self.model()
        cuda = self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        n = len(paths)
        bar = None
        if self.progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(f"caching view {view}", total=n)
        try:
            for c0 in range(0, n, chunk_rows):
                c1 = min(n, c0 + chunk_rows)
                parts = []
                for b0 in range(c0, c1, self.batch_size):
                    b1 = min(c1, b0 + self.batch_size)
                    x = torch.stack([self.image(paths[i], hashes[i], labels[i], view) for i in range(b0, b1)])
                    t0 = time.perf_counter()
                    x = x.to(self.device, non_blocking=True)
                    if cuda:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with torch.inference_mode(), autocast:
                        out = model(x)
                    parts.append(out.float().contiguous().cpu().numpy().astype(dtype, copy=False))
                    self.seconds += time.perf_counter() - t0
                    if bar is not None:
                        bar.update(task, advance=b1 - b0)
                yield rows[c0:c1], np.concatenate(parts)
        finally:
            if bar is not None:
                bar.stop()


def _write_chunk(vdir: Path, rows: Sequence[str], block: np.ndarray) -> None:
    """Write one chunk: the ``.npy`` block, then the ``.json`` naming its rows (each atomically)."""
    name = f"chunk-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with atomic_write(vdir / f"{name}.npy", "wb", fsync=False) as fh:
        np.save(fh, block)
    meta = {"rows": list(rows), "shape": list(block.shape), "dtype": str(block.dtype)}
    atomic_write_text(vdir / f"{name}.json", json.dumps(meta), fsync=False)


def _read_index(vdir: Path) -> dict[str, tuple[Path, int]]:
    """``row key -> (chunk .npy, row)`` over the complete chunks of a view (first chunk by name wins)."""
    found: dict[str, tuple[Path, int]] = {}
    if not vdir.is_dir():
        return found
    for meta_path in sorted(vdir.glob("chunk-*.json")):
        npy = meta_path.with_suffix(".npy")
        try:
            meta = json.loads(meta_path.read_text())
            rows = meta["rows"]
            ok = npy.is_file() and isinstance(rows, list) and len(rows) == meta["shape"][0]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            ok = False
        if not ok:
            warnings.warn(f"feature cache: ignoring unreadable chunk {meta_path}", RuntimeWarning, stacklevel=3)
            continue
        for r, row in enumerate(rows):
            found.setdefault(row, (npy, r))
    return found


def _gather(found: Mapping[str, tuple[Path, int]], rows: Sequence[str]) -> np.ndarray:
    """The stored rows for ``rows``, in order, as one array (each chunk memory-mapped once)."""
    by_chunk: dict[Path, tuple[list[int], list[int]]] = {}
    for i, row in enumerate(rows):
        npy, r = found[row]
        dst, src = by_chunk.setdefault(npy, ([], []))
        dst.append(i)
        src.append(r)
    out = None
    for npy, (dst, src) in by_chunk.items():
        block = np.load(npy, mmap_mode="r")
        if out is None:
            out = np.empty((len(rows), *block.shape[1:]), dtype=block.dtype)
        out[np.asarray(dst)] = block[np.asarray(src)]
    if out is None:  # no rows at all
        out = np.empty((0,), dtype=np.float32)
    return out



def _locate(found: Mapping[str, tuple[Path, int]], rows: Sequence[str]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Where each of ``rows`` is stored: the chunk files, and per row its chunk number and row."""
    files: dict[Path, int] = {}
    which = np.empty(len(rows), dtype=np.int32)
    at = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        npy, r = found[row]
        which[i] = files.setdefault(npy, len(files))
        at[i] = r
    return list(files), which, at


class _MappedRows:
    """``K x N`` rows left in their memory-mapped chunks; indexing as a ``(K, N, ...)`` tensor
    (``[view, index]`` with ints or index tensors, ``[view]``) reads only the rows asked for.

    Pickles as the chunk paths (each process maps the files again).
    """

    def __init__(self, views: list[tuple[list[Path], np.ndarray, np.ndarray]]) -> None:
        self.views = views
        self._maps: dict[Path, np.ndarray] = {}
        first = self._map(views[0][0][0]) if views and views[0][0] else np.empty((0,), np.float32)
        self.row_shape = tuple(first.shape[1:])
        self.np_dtype = first.dtype
        self.shape = torch.Size((len(views), len(views[0][1]) if views else 0, *self.row_shape))
        self.dtype = torch.from_numpy(np.empty(0, self.np_dtype)).dtype
        self.device = torch.device("cpu")
        self.ndim = len(self.shape)

    def _map(self, path: Path) -> np.ndarray:
        block = self._maps.get(path)
        if block is None:
            block = self._maps[path] = np.load(path, mmap_mode="r")
        return block

    def __getitem__(self, key: Any) -> torch.Tensor:
        view, index = key if isinstance(key, tuple) else (key, slice(None))
        v = np.asarray(view.cpu() if isinstance(view, torch.Tensor) else view, dtype=np.int64)
        i = np.arange(self.shape[1]) if isinstance(index, slice) else np.asarray(
            index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64
        )
        v, i = np.broadcast_arrays(v, i)
        out = np.empty((v.size, *self.row_shape), dtype=self.np_dtype)
        flat_v, flat_i = v.reshape(-1), i.reshape(-1)
        for k in np.unique(flat_v).tolist():
            files, which, at = self.views[k]
            sel = np.flatnonzero(flat_v == k)
            chunk = which[flat_i[sel]]
            for c in np.unique(chunk).tolist():
                m = sel[chunk == c]
                out[m] = self._map(files[c])[at[flat_i[m]]]
        return torch.from_numpy(out.reshape(*v.shape, *self.row_shape))

    def to(self, device: str | torch.device) -> torch.Tensor:
        """All rows, read into memory, on ``device``."""
        v = np.repeat(np.arange(self.shape[0]), self.shape[1])
        i = np.tile(np.arange(self.shape[1]), self.shape[0])
        return self[v, i].reshape(self.shape).to(device)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}
