from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

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


NO_SIDES = {"val": np.array([], int), "test": np.array([], int)}
JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0])  # is_jpeg reads only the first bytes


def _h(name: str) -> str:
    """A 32-hex content hash standing for ``name``'s bytes."""
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


def _files(paths: list[Path]) -> list[str]:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(JPEG if p.suffix in (".jpg", ".jpeg") else b"not a jpeg")
    return [str(p) for p in paths]


def _plan(paths: list[str], labels: list[int], classes: tuple[str, ...], hashes: list[str], target: dict[int, int],
          root: str | None = None):
    index = ImageIndex.from_arrays(paths, labels, classes, hashes=hashes, root=root)
    return make_plan(index, {"train": np.arange(len(paths)), **NO_SIDES}, target, seed=0, max_multiplier=None)


def _outs(plan) -> dict[tuple[str, int], str]:
    outs = {(i.source, i.repeat): i.out for i in plan.items}
    assert len(outs) == len(plan.items) and len(set(outs.values())) == len(outs)  # one path per output
    return outs


def test_manifest_sources_sharing_a_base_name_get_distinct_paths(tmp_path: Path) -> None:
    """Issue: a manifest merging d1/cat/000.jpg and d2/cat/000.jpg failed with 'two outputs ... one path'."""
    paths = _files([tmp_path / "d1" / "cat" / "000.jpg", tmp_path / "d2" / "cat" / "000.jpg",
                    tmp_path / "d1" / "cat" / "001.jpg", tmp_path / "d1" / "dog" / "000.png"])
    hashes = [_h(p) for p in paths]
    outs = _outs(_plan(paths, [0, 0, 0, 1], ("cat", "dog"), hashes, {0: 9, 1: 2}))
    one, two = hashes[0][:8], hashes[1][:8]
    assert {k: v for k, v in outs.items() if k[0] in paths[:2]} == {
        (paths[0], 0): f"train/cat/000.{one}.jpg", (paths[1], 0): f"train/cat/000.{two}.jpg",
        (paths[0], 1): f"train/cat/000.{one}.aug1.jpg", (paths[0], 2): f"train/cat/000.{one}.aug2.jpg",
        (paths[1], 1): f"train/cat/000.{two}.aug1.jpg", (paths[1], 2): f"train/cat/000.{two}.aug2.jpg",
    }
    # no collision, no new name: 001.jpg and the other class's 000.png keep theirs
    assert {k: v for k, v in outs.items() if k[0] in paths[2:]} == {
        (paths[2], 0): "train/cat/001.jpg", (paths[2], 1): "train/cat/001.aug1.jpg",
        (paths[2], 2): "train/cat/001.aug2.jpg", (paths[3], 0): "train/dog/000.png",
        (paths[3], 1): "train/dog/000.aug1.png",
    }


def test_a_renamed_original_gives_its_name_to_all_its_copies(tmp_path: Path) -> None:
    """Only one of two same-named originals gets copy 3: it still carries its original's new stem."""
    paths = _files([tmp_path / "d1" / "000.png", tmp_path / "d2" / "000.png"])
    hashes = [_h(p) for p in paths]
    plan = _plan(paths, [0, 0], ("cat",), hashes, {0: 7})
    outs = _outs(plan)
    for (source, repeat), out in outs.items():
        tag = hashes[paths.index(source)][:8]
        assert out == (f"train/cat/000.{tag}.png" if repeat == 0 else f"train/cat/000.{tag}.aug{repeat}.png")
    assert sorted(r for _, r in outs) == [0, 0, 1, 1, 2, 2, 3]


def test_folder_sources_whose_copies_share_a_name(tmp_path: Path) -> None:
    """x.bmp + x.tif both gave x.aug1.png; x.jpg + x.jpeg both gave x.aug1.jpg."""
    root = tmp_path / "src"
    names = ["x.bmp", "x.tif", "x.jpg", "x.jpeg", "z.png"]
    paths = _files([root / "a" / n for n in names])
    hashes = [_h(n) for n in names]
    outs = _outs(_plan(paths, [0] * 5, ("a",), hashes, {0: 15}, root=str(root)))
    for name, path, h in zip(names, paths, hashes):
        assert outs[(path, 0)] == f"train/a/{name}"  # originals never collided: unchanged
        ext = "jpg" if name.endswith(("jpg", "jpeg")) else "png"
        stem = "z" if name == "z.png" else f"x.{h[:8]}"
        assert [outs[(path, k)] for k in (1, 2)] == [f"train/a/{stem}.aug1.{ext}", f"train/a/{stem}.aug2.{ext}"]


def test_a_source_named_like_a_copy(tmp_path: Path) -> None:
    """y.aug1.jpg beside y.jpg (y.jpg's first copy is y.aug1.jpg): a previous build's output as SOURCE."""
    root = tmp_path / "src"
    paths = _files([root / "a" / "y.jpg", root / "a" / "y.aug1.jpg", root / "a" / "w.jpg"])
    hashes = [_h(p) for p in paths]
    outs = _outs(_plan(paths, [0, 0, 0], ("a",), hashes, {0: 9}, root=str(root)))
    y, y1 = hashes[0][:8], hashes[1][:8]
    assert outs[(paths[0], 0)] == "train/a/y.jpg"  # its copy collided, not the original
    assert [outs[(paths[0], k)] for k in (1, 2)] == [f"train/a/y.{y}.aug1.jpg", f"train/a/y.{y}.aug2.jpg"]
    assert outs[(paths[1], 0)] == f"train/a/y.aug1.{y1}.jpg"
    assert [outs[(paths[1], k)] for k in (1, 2)] == [f"train/a/y.aug1.{y1}.aug1.jpg", f"train/a/y.aug1.{y1}.aug2.jpg"]
    assert [outs[(paths[2], k)] for k in (0, 1, 2)] == ["train/a/w.jpg", "train/a/w.aug1.jpg", "train/a/w.aug2.jpg"]


def test_a_png_source_named_like_a_copy(tmp_path: Path) -> None:
    """x.jpg holding PNG bytes gives x.aug1.png copies, the name of the source x.aug1.png next to it."""
    root = tmp_path / "src"
    paths = [str(root / "a" / "x.jpg"), str(root / "a" / "x.aug1.png")]
    (root / "a").mkdir(parents=True)
    for p in paths:
        open(p, "wb").close()
    outs = _outs(_plan(paths, [0, 0], ("a",), ["01", "02"], {0: 4}, root=str(root)))
    assert outs == {(paths[0], 0): "train/a/x.jpg", (paths[0], 1): "train/a/x.01.aug1.png",
                    (paths[1], 0): "train/a/x.aug1.02.png", (paths[1], 1): "train/a/x.aug1.02.aug1.png"}


def test_the_same_file_listed_twice_under_one_name_gets_a_counter(tmp_path: Path) -> None:
    """Equal content and name (an exact duplicate in two folders): a counter in source-path order."""
    paths = _files([tmp_path / "d2" / "000.jpg", tmp_path / "d1" / "000.jpg", tmp_path / "d3" / "001.jpg"])
    h = _h("same bytes")
    outs = _outs(_plan(paths, [0, 0, 0], ("cat",), [h, h, _h("other")], {0: 6}))
    t = h[:8]
    assert {k: v for k, v in outs.items() if k[0] in paths[:2]} == {
        (paths[1], 0): f"train/cat/000.{t}-1.jpg", (paths[1], 1): f"train/cat/000.{t}-1.aug1.jpg",
        (paths[0], 0): f"train/cat/000.{t}-2.jpg", (paths[0], 1): f"train/cat/000.{t}-2.aug1.jpg",
    }
    assert outs[(paths[2], 0)] == "train/cat/001.jpg"


def test_a_tagged_name_taken_by_another_source_falls_back_to_a_counter(tmp_path: Path) -> None:
    h1, h2 = _h("one"), _h("two")
    paths = _files([tmp_path / "d1" / "000.jpg", tmp_path / "d2" / "000.jpg", tmp_path / "d3" / f"000.{h1[:8]}.jpg"])
    outs = _outs(_plan(paths, [0, 0, 0], ("cat",), [h1, h2, _h("three")], {0: 3}))
    assert outs == {(paths[0], 0): f"train/cat/000.{h1[:8]}-1.jpg", (paths[1], 0): f"train/cat/000.{h2[:8]}.jpg",
                    (paths[2], 0): f"train/cat/000.{h1[:8]}.jpg"}


def test_names_depend_only_on_the_inputs_not_their_order(tmp_path: Path) -> None:
    root = tmp_path / "src"
    names = ["a/x.bmp", "a/x.tif", "a/x.jpg", "a/x.jpeg", "a/y.jpg", "a/y.aug1.jpg", "a/z.png",
             "b/000.jpg", "b/001.png"]
    elsewhere = ["d2/b/000.jpg", "d3/b/000.jpg", "d4/b/001.png", "d5/b/001.png"]  # manifest-like
    paths = _files([root / n for n in names] + [tmp_path / n for n in elsewhere])
    labels = [0] * 7 + [1] * 6
    hashes = [_h(p) for p in paths[:-3]] + [_h(paths[-4])] + [_h(p) for p in paths[-2:]]  # d2, d3: same bytes
    sides = {"train": np.arange(11), "val": np.array([11, 12]), "test": np.array([], int)}

    def outs(order: list[int]) -> dict[tuple[str, str, int], str]:
        index = ImageIndex.from_arrays([paths[i] for i in order], [labels[i] for i in order], ("a", "b"),
                                       hashes=[hashes[i] for i in order], root=str(root))
        where = {old: new for new, old in enumerate(order)}
        moved = {s: np.array([where[i] for i in v.tolist()], int) for s, v in sides.items()}
        plan = make_plan(index, moved, {0: 20, 1: 9}, seed=3, max_multiplier=None)
        got = {(i.split, i.source, i.repeat): i.out for i in plan.items}
        assert len(got) == len(plan.items) and len(set(got.values())) == len(got)
        return got

    want = outs(list(range(len(paths))))
    rng = random.Random(0)
    for _ in range(5):
        order = list(range(len(paths)))
        rng.shuffle(order)
        assert outs(order) == want
    t = hashes[-3][:8]
    assert [want[("train", paths[i], 0)] for i in (7, 9, 10)] == [
        f"train/b/000.{hashes[7][:8]}.jpg", f"train/b/000.{t}-1.jpg", f"train/b/000.{t}-2.jpg"]
    assert want[("val", paths[11], 0)] == f"val/b/001.{hashes[11][:8]}.png"
    assert want[("train", paths[8], 0)] == "train/b/001.png"  # the same name in another split does not collide


def test_without_collisions_every_name_is_unchanged(make_folder, tmp_path: Path) -> None:
    from augbal.data import scan
    index = scan(make_folder(tmp_path / "src", {"a": 3, "b": 3}))
    plan = make_plan(index, {"train": np.arange(len(index)), **NO_SIDES}, {0: 7, 1: 9}, seed=0, max_multiplier=None)
    assert len(plan.items) == 16
    for item in plan.items:
        name = Path(item.source).name if item.repeat == 0 else f"{Path(item.source).stem}.aug{item.repeat}.png"
        assert item.out == f"train/{index.classes[item.label]}/{name}"


def test_a_manifest_with_a_base_name_clash_builds(tmp_path: Path, make_folder) -> None:
    """End to end: build-dataset on a CSV manifest merging two folders that reuse file names."""
    from augbal.build import build_dataset
    make_folder(tmp_path / "d1", {"cat": 2, "bird": 1}, seed=1)
    make_folder(tmp_path / "d2", {"cat": 2}, seed=2)
    listed = [("d1", "cat", 0), ("d1", "cat", 1), ("d2", "cat", 0), ("d2", "cat", 1), ("d1", "bird", 0)]
    rows = ["path,label"] + [f"{d}/{c}/{n:03d}.png,{c}" for d, c, n in listed]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    build_dataset(manifest, out, target={"cat": 6, "bird": 3}, split=(1.0, 0.0, 0.0), workers=1)
    written = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(written) == 9 and len({r["path"] for r in written}) == 9
    assert all((out / r["path"]).is_file() for r in written)
    assert sorted(p.relative_to(out).as_posix() for p in (out / "train").rglob("*") if p.is_file()) == sorted(
        r["path"] for r in written)


def test_the_uniqueness_check_stays_as_a_safety_net(tmp_path: Path, monkeypatch) -> None:
    import augbal.build._plan as plan_module
    monkeypatch.setattr(plan_module, "_unique_paths", lambda items, names, sources: ["train/a/same.png"] * len(items))
    paths = _files([tmp_path / "a" / "x.png", tmp_path / "a" / "y.png"])
    with pytest.raises(ValueError, match=r"one path 'train/a/same.png'.*a bug"):
        _plan(paths, [0, 0], ("a",), ["01", "02"], {0: 2})
