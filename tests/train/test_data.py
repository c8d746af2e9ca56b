"""A recipe's data resolved to train / val / test (augbal.train._data), on miniature CIFAR folders."""

from __future__ import annotations

import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from augbal.data import write_image_folder
from augbal.recipes import RecipeError, load_recipe
from augbal.train import _data
from augbal.train._data import (
    CIFAR10_CLASSES,
    DataSplits,
    cifar10_lt_task,
    cifar_root,
    resolve_data,
    seedlike3_task,
)

TRAIN_PER_CLASS, TEST_PER_CLASS = 14, 3


class _Items(list):
    classes = list(CIFAR10_CLASSES)


def _write(root: Path, per_class: int, offset: int) -> None:
    rng = np.random.default_rng(offset)
    items = [(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), i % 10) for i in range(10 * per_class)]
    write_image_folder(_Items(items), root)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    """A miniature CIFAR-10 jpg layout: train/<class>/ (14 each) and test/<class>/ (3 each), distinct images."""
    root = tmp_path_factory.mktemp("cifar")
    _write(root / "train", TRAIN_PER_CLASS, 1)
    _write(root / "test", TEST_PER_CLASS, 2)
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBAL_CACHE_DIR", str(tmp_path / "cache"))


def _names(index) -> list[str]:
    return [str(Path(p).relative_to(Path(p).parents[1])) for p in index.paths.tolist()]


# --------------------------------------------------------------------------- seedlike-3


def test_seedlike3_counts_classes_and_disjoint_sides(cifar):
    task = seedlike3_task(cifar, seed=0, train_counts=(8, 4, 1), val_counts=(4, 2, 1))
    assert task.classes == ("deer", "dog", "cat")
    assert task.counts() == {"train": [8, 4, 1], "val": [4, 2, 1], "test": [3, 3, 3]}
    assert not set(task.train.paths.tolist()) & set(task.val.paths.tolist())
    assert all("/train/" in p for p in [*task.train.paths.tolist(), *task.val.paths.tolist()])
    assert all("/test/" in p for p in task.test.paths.tolist())
    # labels follow the task's class order, not the folder order
    for side in (task.train, task.val, task.test):
        assert all(Path(p).parent.name == task.classes[k] for p, k in zip(side.paths.tolist(), side.labels.tolist()))
    assert task.meta == {"task": "seedlike-3", "root": str(cifar), "seed": 0, "train_counts": [8, 4, 1], "val_counts": [4, 2, 1]}


def test_seedlike3_is_a_seeded_draw(cifar):
    counts = {"train_counts": (8, 4, 1), "val_counts": (4, 2, 1)}
    a, b = seedlike3_task(cifar, seed=3, **counts), seedlike3_task(cifar, seed=3, **counts)
    c = seedlike3_task(cifar, seed=4, **counts)
    assert _names(a.train) == _names(b.train) and _names(a.val) == _names(b.val)
    assert _names(a.train) != _names(c.train)


def test_seedlike3_default_counts_are_design_md(cifar):
    with pytest.raises(ValueError, match="skew needs 4500 images of 'deer'; it has 14"):
        seedlike3_task(cifar)
    with pytest.raises(ValueError, match=r"train_counts must be 3 image counts \(one per class\); got \(1, 2\)"):
        seedlike3_task(cifar, train_counts=(1, 2))


def test_the_archive_is_extracted_once_and_reused(cifar, tmp_path, monkeypatch):
    archive = tmp_path / "cifar10-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(cifar / "train", arcname="train")
        tf.add(cifar / "test", arcname="test")
    counts = {"train_counts": (8, 4, 1), "val_counts": (4, 2, 1)}
    from_folder = seedlike3_task(cifar, seed=2, **counts)
    from_archive = seedlike3_task(archive, seed=2, extract_dir=tmp_path / "x", **counts)
    assert _names(from_archive.train) == _names(from_folder.train)
    assert _names(from_archive.test) == _names(from_folder.test)
    (extracted,) = [p for p in (tmp_path / "x").iterdir()]
    assert extracted.name.startswith("cifar10-jpg-") and not extracted.name.startswith(".")

    def refuse(*args, **kwargs):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(tarfile, "open", refuse)
    assert cifar_root(archive, extract_dir=tmp_path / "x") == extracted
    # default location: the augbal cache
    monkeypatch.undo()
    monkeypatch.setenv("AUGBAL_CACHE_DIR", str(tmp_path / "cache2"))
    assert cifar_root(archive).parent == tmp_path / "cache2" / "datasets"


def test_cifar_root_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar_root(tmp_path / "nope")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="needs train/<class>/ and test/<class>/ folders; missing: test"):
        cifar_root(tmp_path)
    (tmp_path / "f.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a file but not a .tar.gz/.tgz/.tar archive"):
        cifar_root(tmp_path / "f.zip")


# --------------------------------------------------------------------------- cifar10-lt


def test_cifar10_lt_profile_balanced_validation_and_head_cap(cifar):
    task = cifar10_lt_task(cifar, ratio=10, n_max=14, val_per_class=2, seed=0)
    standard = [math.floor(14 * 10 ** (-i / 9) + 1e-9) for i in range(10)]
    assert standard[0] == 14
    assert task.counts()["train"] == [12, *standard[1:]]  # the head gives its 2 images to validation
    assert task.counts()["val"] == [2] * 10 and task.counts()["test"] == [3] * 10
    assert task.classes == CIFAR10_CLASSES
    assert not set(task.train.paths.tolist()) & set(task.val.paths.tolist())
    assert task.meta["train_counts"] == [12, *standard[1:]] and task.meta["ratio"] == 10.0


def test_cifar10_lt_default_profile_is_the_literatures():
    from augbal.data import long_tail_counts

    assert long_tail_counts(5000, 10, 100).tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    with pytest.raises(ValueError, match="val_per_class must be an int >= 1; got 0"):
        cifar10_lt_task("/nowhere", val_per_class=0)


# --------------------------------------------------------------------------- resolve_data


def test_resolve_data_demo_split(demo_root):
    fractions = {"val_fraction": 0.2, "test_fraction": 0.2}
    splits = resolve_data({"source": "demo", **fractions}, seed=0)
    assert splits.classes == ("cat", "deer", "dog")
    assert splits.counts() == {"train": [36, 360, 108], "val": [12, 120, 36], "test": [12, 120, 36]}
    assert all(p.startswith(str(_data.cache_root() / "demo")) for p in splits.train.paths.tolist())
    other = resolve_data({"source": str(demo_root), **fractions}, seed=1)
    fixed = resolve_data({"source": str(demo_root), **fractions, "split_seed": 0}, seed=1)
    assert _names(fixed.val) == _names(splits.val) != _names(other.val)  # split_seed pins the split across seeds


def test_resolve_data_classes_skew_and_no_test(demo_root):
    base = resolve_data({"source": str(demo_root), "classes": ["dog", "cat"], "test_fraction": 0}, seed=0)
    assert base.classes == ("dog", "cat") and base.test is None
    assert base.counts() == {"train": [162, 54], "val": [18, 6]}
    skewed = resolve_data(
        {"source": str(demo_root), "classes": ["dog", "cat"], "test_fraction": 0, "skew": {"ratio": 10, "n_max": 100}}, seed=0
    )
    assert skewed.counts() == {"train": [100, 10], "val": [18, 6]}  # the train side only
    assert _names(skewed.val) == _names(base.val)
    assert set(skewed.train.paths.tolist()) <= set(base.train.paths.tolist())
    assert skewed.meta["skew"] == {"ratio": 10, "n_max": 100}


def test_resolve_data_existing_splits_and_manifest(cifar, tmp_path):
    tree = tmp_path / "built"
    for side, per_class in (("train", 4), ("val", 3), ("test", 3)):
        _write(tree / side, per_class, {"train": 5, "val": 6, "test": 7}[side])
    splits = resolve_data({"source": str(tree), "splits": "existing", "classes": ["cat", "dog"]}, seed=0)
    assert splits.counts() == {"train": [4, 4], "val": [3, 3], "test": [3, 3]}
    (tree / "test").rename(tree / "unused")
    assert resolve_data({"source": str(tree), "splits": "existing"}, seed=0).test is None
    (tree / "val").rename(tree / "valid")
    with pytest.raises(FileNotFoundError, match="needs .* to hold train/ and val/ .*; missing: val"):
        resolve_data({"source": str(tree), "splits": "existing"}, seed=0)
    # a CSV manifest source
    manifest = tmp_path / "m.csv"
    rows = [f"{p},{'cat' if '/cat/' in p else 'dog'}" for p in sorted(map(str, (cifar / "train").glob("[cd][ao]*/*.png")))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    splits = resolve_data({"source": str(manifest), "val_fraction": 0.25, "test_fraction": 0.25}, seed=0)
    assert splits.classes == ("cat", "dog") and sum(map(sum, splits.counts().values())) == 28
    with pytest.raises(RecipeError, match="recipe key data.splits: 'existing' needs a folder"):
        resolve_data({"source": str(manifest), "splits": "existing"}, seed=0)


def test_resolve_data_tasks_and_relative_paths(cifar, tmp_path):
    section = {"task": "seedlike-3", "root": cifar.name, "task_options": {"train_counts": [8, 4, 1], "val_counts": [4, 2, 1]}}
    splits = resolve_data(section, seed=5, recipe_dir=cifar.parent)
    assert splits.counts()["train"] == [8, 4, 1] and splits.meta["seed"] == 5
    recipe = load_recipe({"data": {"task": "cifar10-lt", "root": str(cifar), "ratio": 10,
                                   "task_options": {"n_max": 14, "val_per_class": 2}}})
    lt = resolve_data(recipe.data, seed=recipe.seed)
    assert lt.counts()["train"][0] == 12 and lt.meta["ratio"] == 10.0
    with pytest.raises(FileNotFoundError, match=r"recipe key data.source: '.*missing' does not exist"):
        resolve_data({"source": "missing"}, seed=0, recipe_dir=tmp_path)
    with pytest.raises(RecipeError, match="recipe key data.splits: must be 'split' or 'existing'; got 'x'"):
        resolve_data({"source": "demo", "splits": "x"}, seed=0)


def test_describe_is_a_counts_table(cifar):
    task = seedlike3_task(cifar, seed=0, train_counts=(8, 4, 1), val_counts=(4, 2, 1))
    assert task.describe().splitlines() == [
        "class  train  val  test",
        "deer       8    4     3",
        "dog        4    2     3",
        "cat        1    1     3",
        "total     13    7     9",
    ]
    assert isinstance(task, DataSplits) and _data.SEEDLIKE3_CLASSES == task.classes
