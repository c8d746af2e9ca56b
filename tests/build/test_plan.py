from __future__ import annotations

import numpy as np
import pytest

from augbal.build import copies_per_original, make_plan
from augbal.data import ImageIndex


def test_copies_are_spread_evenly_and_reach_the_target_exactly() -> None:
    hashes = [f"{i:02x}" for i in range(7)]
    copies = copies_per_original(hashes, hashes, 30, seed=1, max_multiplier=None)
    assert sum(copies) == 23 and max(copies) - min(copies) == 1 and sorted(set(copies)) == [3, 4]


def test_tie_order_is_seeded_and_keyed_on_content() -> None:
    hashes = [f"{i:02x}" for i in range(10)]
    by_seed = {tuple(copies_per_original(hashes, hashes, 15, seed=s, max_multiplier=None)) for s in range(6)}
    assert len(by_seed) > 1  # the seed moves which originals get the remainder
    # adding a file never takes an extra copy from an original that ranks above it
    a = copies_per_original(hashes, hashes, 15, seed=0, max_multiplier=None)
    b = copies_per_original(hashes + ["ff"], hashes + ["x"], 16, seed=0, max_multiplier=None)
    assert a == b[:10] or sum(x != y for x, y in zip(a, b)) <= 1


def test_max_multiplier_caps_every_original() -> None:
    copies = copies_per_original(["a", "b", "c"], ["1", "2", "3"], 100, seed=0, max_multiplier=4)
    assert copies == [3, 3, 3]
    assert copies_per_original(["a"], ["1"], 5, seed=0, max_multiplier=1) == [0]


def test_no_copies_at_or_below_the_count() -> None:
    assert copies_per_original(["a", "b"], ["1", "2"], 2, seed=0, max_multiplier=None) == [0, 0]
    assert copies_per_original([], [], 5, seed=0, max_multiplier=None) == []


def test_plan_refuses_two_outputs_on_one_path(tmp_path) -> None:
    root = tmp_path / "src"
    paths = [str(root / "a" / "x.jpg"), str(root / "a" / "x.aug1.png")]
    for p in paths:
        (root / "a").mkdir(parents=True, exist_ok=True)
        open(p, "wb").close()
    index = ImageIndex.from_arrays(paths, [0, 0], ("a",), hashes=["01", "02"], root=str(root))
    with pytest.raises(ValueError, match=r"one path 'train/a/x.aug1.png'"):
        make_plan(index, {"train": np.array([0, 1]), "val": np.array([], int), "test": np.array([], int)},
                  {0: 4}, seed=0, max_multiplier=None)
