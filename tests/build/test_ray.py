"""Issue 9, item 6: ``executor="ray"`` on a real local Ray (2 CPUs, no dashboard, no usage stats)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import augbal.build._build as build_module  # noqa: E402
from augbal.build import BuildTaskError, Item, build_dataset, run_local, run_ray  # noqa: E402

OPTIONS = dict(policy="medium", target={"b": 40, "c": 40}, seed=5, split=(0.6, 0.2, 0.2))


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """12 / 5 / 2 distinct random 12 x 14 PNGs (conftest's make_folder, at module scope)."""
    import numpy as np
    from PIL import Image

    root, rng = tmp_path_factory.mktemp("ray") / "src", np.random.default_rng(0)
    for name, n in {"a": 12, "b": 5, "c": 2}.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def whole(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "out"
    build_dataset(source, out, workers=1, **OPTIONS)
    return out


def test_ray_gives_the_bytes_of_one_worker_with_bounded_tasks(source, whole, tmp_path, tree_bytes, monkeypatch) -> None:
    waited: list[int] = []
    real_wait = ray.wait

    def spy(refs, **kwargs):
        waited.append(len(refs))
        return real_wait(refs, **kwargs)

    monkeypatch.setattr(ray, "wait", spy)
    s = build_dataset(source, tmp_path / "out", executor="ray", **OPTIONS)
    got, want = tree_bytes(tmp_path / "out"), tree_bytes(whole)
    assert sum(r["augmented"] for r in s.rows) == 75 and sum(".aug" in k for k in want) == 75  # 5 chunks
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []  # every image, manifest.csv/.jsonl, summary.json
    assert waited == [4, 4, 3, 2, 1]  # 2 x 2 CPUs in flight at most: the 5th chunk waits for one


def test_a_failed_ray_task_names_its_file(source: Path, tmp_path: Path) -> None:
    torn = tmp_path / "torn.png"
    torn.write_bytes((source / "a" / "000.png").read_bytes()[:50])
    items = [Item("train", 0, str(torn), "0a", "g0", f"train/a/torn.aug{k}.png", k) for k in (1, 2)]
    with pytest.raises(BuildTaskError, match=rf"^cannot write train/a/torn.aug1.png from {torn}: ImageLoadError: "):
        run_ray(items, str(tmp_path / "out"), spec={"name": "light", "seed": 0}, size=None, link=False)


def test_a_build_stopped_locally_resumes_on_ray_to_the_same_bytes(source, whole, tmp_path, tree_bytes, monkeypatch) -> None:
    def crash(items, root, **kwargs):
        run_local(items[:30], root, **kwargs)  # 19 originals, 11 copies
        raise OSError(errno.ENOSPC, "No space left on device", root)

    monkeypatch.setattr(build_module, "run_local", crash)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(source, tmp_path / "out", workers=1, **OPTIONS)
    monkeypatch.undo()
    s = build_dataset(source, tmp_path / "out", executor="ray", resume=True, **OPTIONS)
    assert s.resumed == 11
    assert tree_bytes(tmp_path / "out") == tree_bytes(whole)


def test_the_cli_executor_ray_uses_the_ray_of_this_process(source, whole, tmp_path, tree_bytes) -> None:
    from click.testing import CliRunner

    from augbal.cli import cli

    result = CliRunner().invoke(cli, [
        "build-dataset", str(source), str(tmp_path / "out"), "--executor", "ray", "--policy", "medium",
        "--target", '{"b": 40, "c": 40}', "--seed", "5", "--split", "0.6,0.2,0.2"])
    assert result.exit_code == 0, result.output
    assert ray.is_initialized()  # not shut down: the connection was not the build's
    assert tree_bytes(tmp_path / "out") == tree_bytes(whole)


def test_webdataset_shards_built_on_ray_merge_to_the_tar_bytes_of_one_local_worker(source, tmp_path, tree_bytes) -> None:
    from augbal.build import merge_shards

    wds = dict(OPTIONS, format="webdataset", shard_size=16)
    build_dataset(source, tmp_path / "whole", workers=1, **wds)
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        build_dataset(source, part, executor="ray", num_shards=2, shard_index=i, **wds)
    merge_shards(tmp_path / "merged", parts)
    got, want = tree_bytes(tmp_path / "merged"), tree_bytes(tmp_path / "whole")
    assert sorted(got) == sorted(want) and sum(k.endswith(".tar") for k in want) == 8
    assert [k for k in want if k != "summary.json" and got[k] != want[k]] == []  # the tar files, the manifests
