from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from augbal.build import Augmenter, BuildOptionError, OutputPathError, build_dataset
from augbal.data import load_rgb, scan


def _train_after(summary) -> dict[str, int]:
    return {r["class"]: r["after"] for r in summary.rows if r["split"] == "train"}


def _train_before(summary) -> dict[str, int]:
    return {r["class"]: r["before"] for r in summary.rows if r["split"] == "train"}


ALL_TRAIN = (1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("auto", {"a": 12, "b": 12, "c": 12}),
        ("not majority", {"a": 12, "b": 12, "c": 12}),
        ("all", {"a": 12, "b": 12, "c": 12}),
        ("minority", {"a": 12, "b": 5, "c": 12}),
        ({"b": 9}, {"a": 12, "b": 9, "c": 2}),
        ('{"c": 7, "b": 6}', {"a": 12, "b": 6, "c": 7}),
    ],
)
def test_exact_counts_per_target_form(small_source: Path, tmp_path: Path, target, expected) -> None:
    s = build_dataset(small_source, tmp_path / "out", target=target, split=ALL_TRAIN, dry_run=True)
    assert _train_after(s) == expected


def test_float_ratio_with_two_classes(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 10, "b": 2})
    s = build_dataset(src, tmp_path / "out", target=0.5, split=ALL_TRAIN, dry_run=True)
    assert _train_after(s) == {"a": 10, "b": 5}


def test_max_multiplier_caps_and_reports_short_classes(small_source: Path, tmp_path: Path) -> None:
    s = build_dataset(small_source, tmp_path / "out", split=ALL_TRAIN, max_multiplier=3, dry_run=True)
    assert _train_after(s) == {"a": 12, "b": 12, "c": 6}
    assert s.short == {"c": (12, 6)}
    assert {r["class"]: r["max_reuse"] for r in s.rows if r["split"] == "train"} == {"a": 1, "b": 3, "c": 3}


def test_written_tree_matches_the_plan_and_scans_back(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    index = scan(out / "train")
    assert dict(zip(index.classes, index.class_counts().tolist())) == {"a": 12, "b": 12, "c": 12}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "manifest.jsonl", "problems.csv", "summary.json", "train"]
    assert not (tmp_path / "out.incomplete").exists()
    assert sorted(os.listdir(out / "train" / "c")) == [
        "000.aug1.png", "000.aug2.png", "000.aug3.png", "000.aug4.png", "000.aug5.png",
        "000.png",
        "001.aug1.png", "001.aug2.png", "001.aug3.png", "001.aug4.png", "001.aug5.png",
        "001.png",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["after"]["train"] == {"a": 12, "b": 12, "c": 12}
    assert summary["config_hash"] == s.config_hash and len(s.config_hash) == 64
    assert set(summary["versions"]) >= {"augbal", "numpy", "pillow"}
    assert summary["warnings"] == [w for w in s.warnings] and "c (2)" in s.warnings[0]


def test_val_and_test_are_copied_untouched(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, split=(0.6, 0.2, 0.2), workers=1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    held_out = [r for r in rows if r["split"] != "train"]
    assert held_out and all(r["repeat"] == 0 for r in held_out)
    for r in held_out:
        assert (out / r["path"]).read_bytes() == Path(r["source_path"]).read_bytes()
    assert {r["split"] for r in rows if r["repeat"] > 0} == {"train"}


def test_copies_keep_their_source_group(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    group_of = {r["source_path"]: r["group"] for r in rows if r["repeat"] == 0}
    copies = [r for r in rows if r["repeat"] > 0]
    assert len(copies) == 17 and all(r["group"] == group_of[r["source_path"]] for r in copies)
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,label,split,group,source_path,source_hash,policy,repeat,seed"


def test_workers_one_and_two_and_two_runs_give_the_same_bytes(small_source: Path, tmp_path: Path, tree_bytes) -> None:
    options = dict(policy="medium", target={"b": 20, "c": 14}, seed=5)
    a = build_dataset(small_source, tmp_path / "w1", workers=1, **options)
    build_dataset(small_source, tmp_path / "w1b", workers=1, **options)
    build_dataset(small_source, tmp_path / "w2", workers=2, **options)
    one = tree_bytes(tmp_path / "w1")
    assert sum(1 for k in one if ".aug" in k) == sum(r["augmented"] for r in a.rows) > 16  # more than one chunk
    for other in ("w1b", "w2"):
        two = tree_bytes(tmp_path / other)
        assert one.keys() == two.keys()
        assert [k for k in one if one[k] != two[k]] == []  # every image, manifest and summary.json


def test_an_augmented_image_is_reproduced_from_its_manifest_row(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, policy="heavy", split=ALL_TRAIN, seed=3, workers=1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["label"] == "c" and r["repeat"] == 4)
    classes = json.loads((out / "summary.json").read_text())["counts"]["before"]["train"].keys()
    classes = list(classes)
    made = Augmenter(json.loads(row["policy"]), size=None).png(
        load_rgb(row["source_path"]), label=classes.index(row["label"]), source_hash=row["source_hash"],
        repeat=row["repeat"],
    )
    assert json.loads(row["policy"])["seed"] == row["seed"] == 3
    assert made == (out / row["path"]).read_bytes()
    other = next(r for r in rows if r["label"] == "c" and r["repeat"] == 3 and r["source_path"] == row["source_path"])
    assert (out / other["path"]).read_bytes() != made  # repeat k changes the image


def test_adding_an_unrelated_file_keeps_the_other_augmented_images(
    small_source: Path, tmp_path: Path, make_folder, tree_bytes
) -> None:
    build_dataset(small_source, tmp_path / "before", split=ALL_TRAIN, seed=1, workers=1)
    make_folder(tmp_path / "extra", {"b": 1}, seed=99)
    os.replace(tmp_path / "extra" / "b" / "000.png", small_source / "b" / "new.png")
    build_dataset(small_source, tmp_path / "after", split=ALL_TRAIN, seed=1, workers=1)
    before, after = tree_bytes(tmp_path / "before"), tree_bytes(tmp_path / "after")
    shared = [k for k in before if ".aug" in k and k in after]
    assert len(shared) >= 15
    assert all(before[k] == after[k] for k in shared)
    assert any(k.startswith("train/b/new.aug") for k in after)


def test_link_hard_links_originals(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, split=ALL_TRAIN, target={"a": 12}, link=True, workers=1)
    assert os.stat(out / "train" / "a" / "003.png").st_ino == os.stat(small_source / "a" / "003.png").st_ino


def test_dry_run_writes_nothing(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    s = build_dataset(small_source, out, dry_run=True)
    assert s.dry_run and sorted(os.listdir(tmp_path)) == before and not out.exists()


def test_problem_files_are_reported_not_copied(small_source: Path, tmp_path: Path) -> None:
    (small_source / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    s = build_dataset(small_source, out, split=ALL_TRAIN, target={"a": 12}, workers=1)
    assert [(p["kind"], Path(p["path"]).name) for p in s.problems] == [("truncated", "broken.png")]
    assert "broken.png" in (out / "problems.csv").read_text()
    assert not (out / "train" / "a" / "broken.png").exists()


def test_a_failed_build_leaves_no_out(small_source: Path, tmp_path: Path, monkeypatch) -> None:
    import augbal.build._build as b

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(b, "_write_outputs", fail)
    with pytest.raises(OSError, match="No space"):
        build_dataset(small_source, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.incomplete").is_dir()
    with pytest.raises(OutputPathError, match="an interrupted build left .*out.incomplete"):
        build_dataset(small_source, tmp_path / "out", workers=1)


def test_refused_outputs(small_source: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match=r"got OUT .*src/inner inside SOURCE .*src$"):
        build_dataset(small_source, small_source / "inner", dry_run=True)
    with pytest.raises(OutputPathError, match="inside SOURCE"):
        build_dataset(small_source, small_source, dry_run=True)
    with pytest.raises(OutputPathError, match=r"got SOURCE .*src inside OUT .*"):
        build_dataset(small_source, tmp_path, dry_run=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(OutputPathError, match="got non-empty .*full"):
        build_dataset(small_source, tmp_path / "full", dry_run=True)


def test_overwrite_replaces_a_non_empty_out(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    build_dataset(small_source, out, target={"a": 12}, overwrite=True, workers=1)
    assert not (out / "old.txt").exists() and (out / "summary.json").is_file()


def test_bad_options_name_the_option(small_source: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "o", target="bogus", dry_run=True)
    assert info.value.option == "target" and "bogus" in str(info.value)
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "o", target="{bad json", dry_run=True)
    assert info.value.option == "target"
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "o", policy="nosuchpolicy", dry_run=True)
    assert info.value.option == "policy" and "nosuchpolicy" in str(info.value)
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "o", split=(0.5, 0.1, 0.1), dry_run=True)
    assert info.value.option == "split"
    with pytest.raises(ValueError, match="max_multiplier"):
        build_dataset(small_source, tmp_path / "o", max_multiplier=0, dry_run=True)


def test_rarity_scaled_policy_takes_the_training_counts(small_source: Path, tmp_path: Path) -> None:
    s = build_dataset(small_source, tmp_path / "o", policy="rarity_scaled", split=ALL_TRAIN, dry_run=True)
    assert s.config["policy"]["name"] == "rarity_scaled" and s.config["policy"]["counts"] == [12, 5, 2]
    assert _train_before(s) == {"a": 12, "b": 5, "c": 2}


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_read_manifest_reads_the_build_manifest_back(small_source: Path, tmp_path: Path, name: str) -> None:
    """Issue 9: read_manifest(OUT/manifest.csv) reads a build back with labels and groups (extra columns
    such as source_hash or repeat are ignored; the CSV header used to be refused)."""
    from augbal.data import read_manifest

    out = tmp_path / "out"
    build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    rows = read_manifest(out / name)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines) == 36
    assert [(r.path, r.label, r.group) for r in rows] == [
        (os.path.normpath(out / x["path"]), x["label"], x["group"]) for x in lines
    ]
    index = scan(out / name)
    assert dict(zip(index.classes, index.class_counts().tolist())) == {"a": 12, "b": 12, "c": 12}
