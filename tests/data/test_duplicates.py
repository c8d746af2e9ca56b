import shutil

import numpy as np
import pytest
from PIL import Image

from augbal.data import ImageIndex, find_duplicates, scan
from augbal.data._duplicates import merge_groups

pytestmark = pytest.mark.filterwarnings("ignore::augbal.data.FewImagesWarning")


def _photo(seed, size=64):
    """A smooth random image (perceptual hashes of pure noise are unstable)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


@pytest.fixture
def tree(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    for i in range(6):
        _photo(i).save(tmp_path / "a" / f"{i}.png")
    for i in range(6, 10):
        _photo(i).save(tmp_path / "b" / f"{i}.png")
    shutil.copy(tmp_path / "a" / "0.png", tmp_path / "a" / "0copy.png")  # exact, same class
    shutil.copy(tmp_path / "a" / "1.png", tmp_path / "b" / "1copy.png")  # exact, across classes
    shutil.copy(tmp_path / "a" / "1.png", tmp_path / "b" / "1copy2.png")
    # near: smaller, a little brighter, JPEG (phash distance 2; distinct images here are >= 16 apart)
    _photo(2).resize((48, 48)).point(lambda v: min(255, v + 3)).save(tmp_path / "a" / "2bright.jpg", quality=95)
    return tmp_path


def _names(index, group):
    return sorted(index.paths[i].rsplit("/", 2)[-2] + "/" + index.paths[i].rsplit("/", 1)[-1]
                  for i in np.flatnonzero(index.groups == group))


def test_exact_duplicates_always_grouped(tree):
    index = scan(tree)
    assert index.meta["duplicates"] == {
        "groups": 2, "exact_groups": 2, "near_groups": 0, "cross_class_groups": 1, "duplicated_samples": 5
    }
    groups = sorted(_names(index, g) for g in range(2))
    assert groups == [["a/0.png", "a/0copy.png"], ["a/1.png", "b/1copy.png", "b/1copy2.png"]]
    assert (index.groups >= 0).sum() == 5 and index.phashes.tolist() == [""] * len(index)


def test_near_duplicates_opt_in(tree):
    index = scan(tree, near_duplicates=True)
    assert index.meta["duplicates"]["near_groups"] == 1 and index.meta["duplicates"]["groups"] == 3
    near = index.groups[index.paths.tolist().index(str(tree / "a" / "2.png"))]
    assert near >= 0 and _names(index, near) == ["a/2.png", "a/2bright.jpg"]
    assert all(len(h) == 16 for h in index.phashes.tolist())
    # the same groups when find_duplicates computes the perceptual hashes itself
    plain = scan(tree)
    report = find_duplicates(plain, near=True)
    assert report.groups.tolist() == index.groups.tolist()
    assert report.kinds.count("near") == 1 and report.cross_class_groups == 1 and report.redundant == 4
    # a zero distance keeps only identical perceptual hashes
    assert find_duplicates(index, near=True, max_distance=0).near_groups == 0


def test_group_ids_number_groups_by_first_member():
    index = ImageIndex.from_arrays(
        list("abcdef"), [0, 0, 1, 1, 0, 1], ["x", "y"], hashes=["h3", "h1", "h2", "h1", "h3", "h9"]
    )
    report = find_duplicates(index, near=False)
    assert report.groups.tolist() == [0, 1, -1, 1, 0, -1]
    assert report.kinds == ("exact", "exact") and report.cross_class == (False, True)
    assert report.members(1).tolist() == [1, 3]


def test_near_search_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    flips = [np.uint64(0)] + [np.uint64(1 << int(b)) for b in rng.integers(0, 64, 3)]
    values = np.concatenate([base, base[:10] ^ flips[1], base[10:20] ^ flips[1] ^ flips[2] ^ flips[3]])
    hexes = [f"{int(v):016x}" for v in values]
    n = len(hexes)
    index = ImageIndex.from_arrays([str(i) for i in range(n)], [0] * n, ["x"], hashes=[str(i) for i in range(n)],
                                   phashes=hexes)
    for t in (0, 1, 2, 3, 6):
        report = find_duplicates(index, near=True, max_distance=t)
        dist = np.array([[bin(int(a) ^ int(b)).count("1") for b in values] for a in values])
        expected = merge_groups(*[np.where(dist[i] <= t, i, -1) for i in range(n)])
        assert report.groups.tolist() == expected.tolist(), t


def test_near_search_without_numpy_bitwise_count(monkeypatch):
    # numpy 1.x (pyproject allows numpy>=1.24) has no np.bitwise_count
    values = np.array([0, 1, 3, 2**63 + 7, 2**63 + 15, 0x00FF00FF00FF0000], dtype=np.uint64)
    index = ImageIndex.from_arrays(list("abcdef"), [0] * 6, ["x"], hashes=list("abcdef"),
                                   phashes=[f"{int(v):016x}" for v in values])
    expected = find_duplicates(index, near=True, max_distance=1).groups.tolist()
    assert expected == [0, 0, 0, 1, 1, -1]
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert find_duplicates(index, near=True, max_distance=1).groups.tolist() == expected


def test_merge_groups_and_validation():
    assert merge_groups(np.array([3, -1, 3, 7, 7]), np.array([-1, 1, 1, -1, -1])).tolist() == [0, 0, 0, 1, 1]
    index = ImageIndex.from_arrays(["a"], [0], ["x"], hashes=["h"])
    with pytest.raises(ValueError, match="max_distance must be an int in \\[0, 63\\]; got 64"):
        find_duplicates(index, max_distance=64)
    with pytest.raises(ValueError, match="needs content hashes"):
        find_duplicates(ImageIndex.from_arrays(["a"], [0], ["x"]), near=False)


def test_16_bit_images_are_not_all_near_duplicates(tmp_path):
    # Pillow's convert("L") clips 16-bit values at 255: every bright 16-bit image hashed alike
    for k in range(4):
        smooth = np.asarray(_photo(k).convert("L"), dtype=np.uint16) * 257
        (tmp_path / "c").mkdir(exist_ok=True)
        Image.fromarray(smooth).save(tmp_path / "c" / f"{k}.png")
    Image.fromarray(np.asarray(_photo(0).convert("L"))).save(tmp_path / "c" / "eight-bit-copy.png")
    index = scan(tmp_path, near_duplicates=True)
    assert Image.open(index.paths[0]).mode == "I;16"
    assert len(set(index.phashes.tolist())) >= 4
    report = find_duplicates(index, near=True)
    assert report.n_groups == 1 and sorted(index.paths[report.members(0)].tolist()) == [
        str(tmp_path / "c" / "0.png"), str(tmp_path / "c" / "eight-bit-copy.png")]
    plain = scan(tmp_path)  # hashes computed from the files
    assert find_duplicates(plain, near=True).groups.tolist() == report.groups.tolist()
