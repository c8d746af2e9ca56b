"""Issue 9: ``undersample`` drops training originals first (seeded by content hash), then oversampling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from augbal.build import BuildOptionError, build_dataset

ALL_TRAIN = (1.0, 0.0, 0.0)


def _train(summary, key: str) -> dict[str, int]:
    return {r["class"]: r[key] for r in summary.rows if r["split"] == "train"}


@pytest.mark.parametrize(
    ("undersample", "target", "after", "dropped"),
    [
        ("auto", "auto", {"a": 2, "b": 2, "c": 2}, 13),
        ("not minority", {"a": 3}, {"a": 3, "b": 2, "c": 2}, 13),
        ("majority", "auto", {"a": 5, "b": 5, "c": 5}, 10),
        ({"a": 6}, "auto", {"a": 6, "b": 6, "c": 6}, 6),
        ('{"a": 4, "b": 3}', "minority", {"a": 4, "b": 3, "c": 4}, 10),
    ],
)
def test_exact_counts_per_undersample_form(small_source: Path, tmp_path, undersample, target, after, dropped) -> None:
    s = build_dataset(small_source, tmp_path / "out", split=ALL_TRAIN, undersample=undersample, target=target,
                      dry_run=True)
    assert _train(s, "after") == after
    assert _train(s, "before") == {"a": 12, "b": 5, "c": 2}
    assert len(s.dropped) == dropped
    expected = json.loads(undersample) if isinstance(undersample, str) and undersample.startswith("{") else undersample
    assert s.config["undersample"] == expected


def test_float_ratio_undersamples_the_majority(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 10, "b": 2})
    s = build_dataset(src, tmp_path / "out", split=ALL_TRAIN, undersample=0.5, dry_run=True)
    assert _train(s, "after") == {"a": 4, "b": 4} and len(s.dropped) == 6


def test_dropped_originals_are_listed_and_not_copied(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = build_dataset(small_source, out, split=ALL_TRAIN, undersample={"a": 7}, target={"a": 7}, workers=1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] == s.dropped and len(s.dropped) == 5
    assert {d["label"] for d in s.dropped} == {"a"}
    names = sorted(p.name for p in (out / "train" / "a").iterdir())
    assert len(names) == 7 and not any(".aug" in n for n in names)
    assert not {Path(d["path"]).name for d in s.dropped} & set(names)
    manifest = (out / "manifest.csv").read_text()
    assert all(d["path"] not in manifest for d in s.dropped)
    assert summary["counts"]["before"]["train"]["a"] == 12 and summary["counts"]["after"]["train"]["a"] == 7


def test_which_originals_stay_follows_content_not_the_listing(small_source: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed"
    for p in sorted(small_source.rglob("*.png")):  # same images, names in reverse order
        dest = renamed / p.parent.name / f"x{99 - int(p.stem):03d}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
    first = build_dataset(small_source, tmp_path / "o1", split=ALL_TRAIN, undersample={"a": 5}, dry_run=True)
    again = build_dataset(renamed, tmp_path / "o2", split=ALL_TRAIN, undersample={"a": 5}, dry_run=True)
    assert sorted(d["source_hash"] for d in first.dropped) == sorted(d["source_hash"] for d in again.dropped)
    other = build_dataset(small_source, tmp_path / "o3", split=ALL_TRAIN, undersample={"a": 5}, seed=4, dry_run=True)
    assert sorted(d["source_hash"] for d in other.dropped) != sorted(d["source_hash"] for d in first.dropped)


@pytest.mark.parametrize(("value", "text"), [({"a": 20}, "a"), ("bogus", "bogus"), ("{oops", "{oops")])
def test_a_bad_undersample_names_the_option(small_source: Path, tmp_path: Path, value, text: str) -> None:
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "out", split=ALL_TRAIN, undersample=value, dry_run=True)
    assert info.value.option == "undersample" and text in str(info.value)
