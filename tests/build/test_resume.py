"""Issue 9: ``--resume`` continues an interrupted build and gives the bytes of an uninterrupted one."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import augbal.build._build as build_module
from augbal.build import OutputPathError, ResumeRefusedError, build_dataset
from augbal.build._execute import run_local

ALL_TRAIN = (1.0, 0.0, 0.0)
SRC = Path(__file__).resolve().parents[2] / "src"


def _crash_after(n: int):
    """A ``run_local`` that writes the plan's first ``n`` items, then fails as a full disk would."""

    def fake(items, root, **kwargs):
        run_local(items[:n], root, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", root)

    return fake


def test_a_killed_build_resumes_to_the_bytes_of_an_uninterrupted_one(make_folder, tree_bytes, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 30, "b": 3}, side=32)
    out = tmp_path / "out"
    target = '{"a": 250, "b": 250}'
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "augbal", "build-dataset", str(src), str(out), "--split", "1,0,0", "--workers", "1",
         "--target", target, "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    staging = tmp_path / "out.incomplete"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if staging.is_dir() and len(list(staging.glob("train/*/*.aug*.png"))) >= 10:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the build ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and (staging / ".augbal-build.json").is_file()
    present = sorted(staging.glob("train/*/*.aug*.png"))
    kept = present[0]
    inode = kept.stat().st_ino
    with pytest.raises(OutputPathError, match="resume=True continues it, overwrite=True discards it") as info:
        build_dataset(src, out, split=ALL_TRAIN, target=target, workers=1)
    assert "--resume continues it, --overwrite discards it" in info.value.cli  # the CLI's wording
    s = build_dataset(src, out, split=ALL_TRAIN, target=target, workers=1, resume=True)
    assert not staging.exists()
    assert s.resumed >= len(present) - 1  # the kill may have cut one file short of its rename
    assert (out / kept.relative_to(staging)).stat().st_ino == inode  # kept, not redone
    whole = build_dataset(src, tmp_path / "whole", split=ALL_TRAIN, target=target, workers=1)
    assert whole.resumed == 0
    got, want = tree_bytes(out), tree_bytes(tmp_path / "whole")
    assert sorted(got) == sorted(want) and len(want) == 504
    assert got == want


def test_resume_after_disk_full_redoes_torn_and_temporary_files(small_source: Path, tree_bytes, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    staging = tmp_path / "out.incomplete"
    monkeypatch.setattr(build_module, "run_local", _crash_after(25))
    with pytest.raises(OSError, match="No space left"):
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    monkeypatch.setattr(build_module, "run_local", run_local)
    augmented = sorted(staging.glob("train/*/*.aug*.png"))
    assert len(augmented) == 6  # 19 originals, then 6 copies
    torn = augmented[0]
    torn.write_bytes(torn.read_bytes()[:-5])  # a file cut short (not written by atomic_write)
    (torn.parent / f".{torn.name}.x1y2.part").write_bytes(b"half")
    s = build_dataset(small_source, out, split=ALL_TRAIN, workers=1, resume=True)
    assert s.resumed == 5
    build_dataset(small_source, tmp_path / "whole", split=ALL_TRAIN, workers=1)
    assert tree_bytes(out) == tree_bytes(tmp_path / "whole")


def test_resume_refuses_another_configuration_naming_the_setting(small_source: Path, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(build_module, "run_local", _crash_after(3))
    with pytest.raises(OSError):
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1, seed=0)
    monkeypatch.setattr(build_module, "run_local", run_local)
    with pytest.raises(ResumeRefusedError) as info:
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1, seed=1, resume=True)
    assert str(info.value) == f"--resume refused: {out}.incomplete was started with --seed 0, this run has --seed 1"
    assert info.value.setting == "seed"
    with pytest.raises(ResumeRefusedError, match=r"started with no --max-multiplier, this run has --max-multiplier 2$"):
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1, max_multiplier=2, resume=True)
    state = json.loads((tmp_path / "out.incomplete" / ".augbal-build.json").read_text())
    assert state["config"]["seed"] == 0 and len(state["config_hash"]) == 64
    s = build_dataset(small_source, out, split=ALL_TRAIN, workers=1, resume=True)
    assert s.resumed == 0 and (out / "summary.json").is_file()


def test_resume_without_a_leftover_builds_from_scratch(small_source: Path, tree_bytes, tmp_path: Path) -> None:
    s = build_dataset(small_source, tmp_path / "out", split=ALL_TRAIN, workers=1, resume=True)
    assert s.resumed == 0
    build_dataset(small_source, tmp_path / "whole", split=ALL_TRAIN, workers=1)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "whole")
    assert not (tmp_path / "out" / ".augbal-build.json").exists()


def test_resume_after_a_stop_just_before_the_rename(small_source: Path, tree_bytes, tmp_path, monkeypatch) -> None:
    """The state file is gone, summary.json is written: the leftover is still recognised and completed."""
    out = tmp_path / "out"

    real_replace = os.replace

    def stop(src, dst, **kwargs):
        if Path(dst) == out:  # only the final rename of OUT.incomplete fails
            raise OSError(errno.EIO, "Input/output error", str(out))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(build_module.os, "replace", stop)
    with pytest.raises(OSError, match="Input/output error"):
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    monkeypatch.undo()
    staging = tmp_path / "out.incomplete"
    assert not (staging / ".augbal-build.json").exists() and (staging / "summary.json").is_file()
    with pytest.raises(ResumeRefusedError, match="started with --seed 0, this run has --seed 2"):
        build_dataset(small_source, out, split=ALL_TRAIN, workers=1, seed=2, resume=True)
    s = build_dataset(small_source, out, split=ALL_TRAIN, workers=1, resume=True)
    assert s.resumed == 17
    build_dataset(small_source, tmp_path / "whole", split=ALL_TRAIN, workers=1)
    assert tree_bytes(out) == tree_bytes(tmp_path / "whole")
