"""The data of a run: a recipe's ``data`` section resolved to train / val / test ImageIndex sides.

Everything here is built from the data layer (``scan``, ``split``, ``skew``,
``select_classes``, ``demo_dataset``); the benchmark tasks of DESIGN.md are two seeded
functions, :func:`seedlike3_task` and :func:`cifar10_lt_task`, whose counts are
parameters (tests use miniature CIFAR-like folders).

Example:
    >>> import os, tempfile
    >>> from augbal.data import demo_dataset
    >>> folder = demo_dataset(tempfile.mkdtemp())
    >>> splits = resolve_data({"source": str(folder), "val_fraction": 0.2, "test_fraction": 0.2}, seed=0)
    >>> splits.classes, len(splits.train), len(splits.val), len(splits.test)
    (('cat', 'deer', 'dog'), 504, 168, 168)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augbal._validation import check_int, check_real, check_seed
from augbal.data import ImageIndex, demo_dataset, long_tail_counts, scan, skew, split

__all__ = [
    "CIFAR10_CLASSES",
    "SEEDLIKE3_CLASSES",
    "DataSplits",
    "cache_root",
    "cifar10_lt_task",
    "cifar_root",
    "resolve_data",
    "seedlike3_task",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SEEDLIKE3_CLASSES: tuple[str, ...] = ("deer", "dog", "cat")
_SIDES = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class DataSplits:
    """The sides of a run's data.

    Attributes:
        train, val: the training and validation sides.
        test: the test side (``None`` when there is none); evaluated once, never for selection.
        classes: class names in label order (the same on every side).
        meta: how the sides were made (source, task, seed, counts asked for).
    """

    train: ImageIndex
    val: ImageIndex
    test: ImageIndex | None
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, list[int]]:
        """Images per class on each side (``{"train": [...], "val": [...], "test": [...]}``)."""
        out = {}
        for name in _SIDES:
            side = getattr(self, name)
            if side is not None:
                out[name] = np.bincount(side.labels, minlength=len(self.classes)).astype(int).tolist()
        return out

    def describe(self) -> str:
        """A plain-text counts table, one row per class and a total row.

        Example:
            >>> idx = ImageIndex.from_arrays(["a", "b", "c"], [0, 1, 1], ("cat", "dog"))
            >>> print(DataSplits(idx, idx.subset([2]), None, idx.classes).describe())
            class  train  val
            cat        1    0
            dog        2    1
            total      3    1
        """
        counts = self.counts()
        header = ["class", *counts]
        rows = [[c, *(str(counts[s][k]) for s in counts)] for k, c in enumerate(self.classes)]
        rows.append(["total", *(str(sum(counts[s])) for s in counts)])
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join([first, *(cell.rjust(w) for cell, w in zip(cells[1:], widths[1:]))])

        return "\n".join(line(r) for r in [header, *rows])


# --------------------------------------------------------------------------- locations


def cache_root() -> Path:
    """augbal's cache folder: ``$AUGBAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/augbal``, else ``~/.cache/augbal``.

    Example:
        >>> import os
        >>> saved = os.environ.pop("AUGBAL_CACHE_DIR", None)
        >>> os.environ["AUGBAL_CACHE_DIR"] = "/tmp/augbal-cache"
        >>> str(cache_root())
        '/tmp/augbal-cache'
        >>> _ = os.environ.pop("AUGBAL_CACHE_DIR") if saved is None else os.environ.update(AUGBAL_CACHE_DIR=saved)
    """
    env = os.environ.get("AUGBAL_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "augbal" if xdg else Path.home() / ".cache" / "augbal"


_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def cifar_root(root: str | os.PathLike[str], *, extract_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``train/<class>/`` and ``test/<class>/``: ``root`` itself, or its extraction.

    A ``.tar.gz`` / ``.tgz`` / ``.tar`` archive is extracted once (tarfile's ``"data"``
    filter: no absolute paths, links or devices leave the folder) into
    ``extract_dir`` (default ``cache_root() / "datasets"``) under a name keyed by the
    archive's path, size and modification time; later calls reuse it. The extraction is
    written to a temporary folder and renamed when complete, so an interrupted one is
    never reused.

    Raises:
        FileNotFoundError: ``root`` does not exist, or lacks ``train/`` or ``test/``.
    """
    path = Path(root)
    if not path.exists():
        raise FileNotFoundError(f"the CIFAR-10 root {str(path)!r} does not exist (a folder with train/ and test/, or its .tar.gz)")
    if path.is_file():
        if not path.name.endswith(_ARCHIVE_SUFFIXES):
            raise FileNotFoundError(f"the CIFAR-10 root {str(path)!r} is a file but not a .tar.gz/.tgz/.tar archive")
        path = _extract(path, Path(extract_dir) if extract_dir is not None else cache_root() / "datasets")
    missing = [side for side in ("train", "test") if not (path / side).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"the CIFAR-10 root {str(path)!r} needs train/<class>/ and test/<class>/ folders; missing: {', '.join(missing)}"
        )
    return path


def _extract(archive: Path, into: Path) -> Path:
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name
    for suffix in _ARCHIVE_SUFFIXES:
        stem = stem.removesuffix(suffix)
    dest = into / f"{stem}-{key}"
    if dest.is_dir():
        return dest
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tf:
        tf.extractall(tmp, filter="data")
    try:
        tmp.rename(dest)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
    return dest


# --------------------------------------------------------------------------- benchmark tasks


def _counts(name: str, values: Sequence[int], n: int) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
        raise ValueError(f"{name} must be {n} image counts (one per class); got {values!r}")
    return [check_int(name, v, low=1) for v in values]


def seedlike3_task(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    train_counts: Sequence[int] = (4500, 450, 45),
    val_counts: Sequence[int] = (450, 90, 18),
    extract_dir: str | os.PathLike[str] | None = None,
) -> DataSplits:
    """The seedlike-3 task of DESIGN.md over CIFAR-10 (``root``: the jpg folder or its .tar.gz).

    Classes deer, dog, cat (labels 0, 1, 2). Train ``train_counts`` (4500/450/45, ratio 100)
    drawn from CIFAR train by a seeded permutation of each class; validation
    ``val_counts`` (450/90/18: another skew, as train and validation priors differ in
    real projects) from the *remaining* train images (no image nor duplicate of one is on
    both sides); test = every CIFAR test image of the three classes (1000 each).

    Example (a miniature CIFAR folder):
        >>> import tempfile
        >>> from augbal.data import write_image_folder
        >>> rng = np.random.default_rng(0)
        >>> class Fake(list):
        ...     classes = ["cat", "deer", "dog"]
        >>> root = Path(tempfile.mkdtemp())
        >>> for side, n in (("train", 12), ("test", 3)):
        ...     items = [(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), i % 3) for i in range(3 * n)]
        ...     _ = write_image_folder(Fake(items), root / side)
        >>> task = seedlike3_task(root, seed=1, train_counts=(8, 4, 1), val_counts=(4, 2, 1))
        >>> task.classes, task.counts()
        (('deer', 'dog', 'cat'), {'train': [8, 4, 1], 'val': [4, 2, 1], 'test': [3, 3, 3]})
    """
    seed = check_seed("seed", seed)
    classes = SEEDLIKE3_CLASSES
    train_n = _counts("train_counts", train_counts, len(classes))
    val_n = _counts("val_counts", val_counts, len(classes))
    base = cifar_root(root, extract_dir=extract_dir)
    pool = scan(base / "train", classes=classes)
    train = skew(pool, counts=dict(zip(classes, train_n)), seed=seed)
    val = skew(pool, counts=dict(zip(classes, val_n)), seed=seed, exclude=train)
    test = scan(base / "test", classes=classes)
    meta = {"task": "seedlike-3", "root": str(base), "seed": seed, "train_counts": train_n, "val_counts": val_n}
    return DataSplits(train, val, test, classes, meta)


def cifar10_lt_task(
    root: str | os.PathLike[str],
    *,
    ratio: float = 100,
    seed: int = 0,
    n_max: int = 5000,
    val_per_class: int = 50,
    extract_dir: str | os.PathLike[str] | None = None,
) -> DataSplits:
    """CIFAR-10-LT: train ``n_i = floor(n_max * ratio^(-i/9))`` for class ``i`` in CIFAR's order.

    Validation is drawn first: ``val_per_class`` images of every class (500 by default,
    balanced), by a seeded permutation of the train images; train is then drawn from the
    images left. With the defaults every class keeps its standard count but the head
    class (airplane), which has 4950 images left instead of 5000: train is 4950, 2997,
    1796, 1077, 645, 387, 232, 139, 83, 50 at ratio 100 (12356 images; the literature's
    12406 uses all of the head class and selects checkpoints on test, which augbal never
    does). ``val_per_class=0`` is refused: a run needs a validation side. Test = the
    CIFAR test set (1000 per class).

    Example (a miniature CIFAR folder, 12 train and 3 test images per class):
        >>> import tempfile
        >>> from augbal.data import write_image_folder
        >>> rng = np.random.default_rng(0)
        >>> class Fake(list):
        ...     classes = list(CIFAR10_CLASSES)
        >>> root = Path(tempfile.mkdtemp())
        >>> for side, n in (("train", 12), ("test", 3)):
        ...     items = [(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), i % 10) for i in range(10 * n)]
        ...     _ = write_image_folder(Fake(items), root / side)
        >>> task = cifar10_lt_task(root, ratio=10, n_max=10, val_per_class=2)
        >>> task.counts()["train"], task.counts()["val"][:3]
        ([10, 7, 5, 4, 3, 2, 2, 1, 1, 1], [2, 2, 2])
    """
    seed = check_seed("seed", seed)
    ratio = check_real("ratio", ratio, low=1)
    n_max = check_int("n_max", n_max, low=1)
    val_per_class = check_int("val_per_class", val_per_class, low=1)
    classes = CIFAR10_CLASSES
    base = cifar_root(root, extract_dir=extract_dir)
    pool = scan(base / "train", classes=classes)
    val = skew(pool, counts=dict.fromkeys(classes, val_per_class), seed=seed)
    left = pool.class_counts() - val.class_counts()
    want = np.minimum(long_tail_counts(n_max, len(classes), ratio), left)
    train = skew(pool, counts=dict(zip(classes, want.tolist())), seed=seed, exclude=val)
    test = scan(base / "test", classes=classes)
    meta = {
        "task": "cifar10-lt",
        "root": str(base),
        "seed": seed,
        "ratio": ratio,
        "n_max": n_max,
        "val_per_class": val_per_class,
        "train_counts": want.astype(int).tolist(),
    }
    return DataSplits(train, val, test, classes, meta)


# --------------------------------------------------------------------------- a recipe's data


def resolve_data(data_section: Any, *, seed: int, recipe_dir: str | os.PathLike[str] | None = None) -> DataSplits:
    """The train / val / test sides a recipe's ``data`` section describes.

    Args:
        data_section: a :class:`augbal.recipes.DataSection` or a mapping of one.
        seed: the run's seed; the split and skew draws use ``data.split_seed`` when it is
            set, this seed otherwise.
        recipe_dir: the folder relative paths are taken from (``load_recipe`` already made
            them absolute; this serves a section built by hand). Default: the current directory.

    A ``source`` folder or manifest is scanned (``classes`` keeps and orders a subset);
    ``splits: split`` makes a stratified, duplicate-aware split with the fractions, then
    ``skew`` (when given) subsamples the *train* side only; ``splits: existing`` scans
    ``source/train``, ``source/val`` and ``source/test`` (when present) with the train
    side's classes. ``source: demo`` writes the embedded demo set to
    ``cache_root() / "demo"`` once.

    Raises:
        FileNotFoundError: a source, root or side folder that does not exist.
        ValueError: the data layer's errors (a class too small for the counts asked, ...).
    """
    from augbal.recipes import DataSection, RecipeError

    if isinstance(data_section, Mapping):
        try:
            data_section = DataSection.model_validate(dict(data_section))
        except Exception as exc:  # pydantic's error, in the recipe's words
            from pydantic import ValidationError

            from augbal.recipes import _translate

            if isinstance(exc, ValidationError):
                raise _translate(exc, ("data",)) from None
            raise
    if not isinstance(data_section, DataSection):
        raise TypeError(f"data_section must be a DataSection or a mapping; got {type(data_section).__name__}")
    d = data_section
    seed = check_seed("seed", seed)
    draw_seed = d.split_seed if d.split_seed is not None else seed
    base = Path(recipe_dir) if recipe_dir is not None else Path.cwd()

    def local(p: str | None) -> Path | None:
        if p is None:
            return None
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else base / q

    if d.task is not None:
        kwargs = dict(d.task_options)
        if d.task == "cifar10-lt" and d.ratio is not None:
            kwargs["ratio"] = d.ratio
        fn = seedlike3_task if d.task == "seedlike-3" else cifar10_lt_task
        return fn(local(d.root), seed=draw_seed, extract_dir=local(d.extract_dir), **kwargs)  # type: ignore[arg-type]

    source = cache_root() / "demo" if d.source == "demo" else local(d.source)
    if source is None:  # pragma: no cover - the section's rule requires source or task
        raise RecipeError("recipe key data: needs exactly one of source or task; got neither")
    if d.source == "demo":
        demo_dataset(source)
    if not source.exists():
        raise FileNotFoundError(f"recipe key data.source: {str(source)!r} does not exist")
    meta: dict[str, Any] = {"source": d.source, "splits": d.splits, "seed": draw_seed}
    if d.splits == "existing":
        if not source.is_dir():
            raise RecipeError(f"recipe key data.splits: 'existing' needs a folder with train/ and val/; got the file {str(source)!r}")
        missing = [side for side in ("train", "val") if not (source / side).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"data.splits 'existing' needs {str(source)!r} to hold train/ and val/ (and optionally test/); missing: {', '.join(missing)}"
            )
        train = scan(source / "train", classes=d.classes)
        val = scan(source / "val", classes=train.classes, allow_empty=True)
        test = scan(source / "test", classes=train.classes, allow_empty=True) if (source / "test").is_dir() else None
    else:
        index = scan(source, classes=d.classes)
        ratios = (1.0 - d.val_fraction - d.test_fraction, d.val_fraction, d.test_fraction)
        train, val, test = split(index, ratios=ratios, seed=draw_seed)
        if d.test_fraction == 0:
            test = None
        meta["fractions"] = [d.val_fraction, d.test_fraction]
    if d.skew is not None:
        kwargs = dict(d.skew)
        kwargs.setdefault("seed", draw_seed)
        train = skew(train, **kwargs)
        meta["skew"] = dict(d.skew)
    return DataSplits(train, val, test, train.classes, meta)
