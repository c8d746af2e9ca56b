"""The grid: real runs keyed by recipe hash, skipped when finished, a failure recorded without
stopping the grid, shards that partition the grid, and the report made from the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from augbal.bench import expand_grid, load_bench, run_grid, write_report
from augbal.bench._runs import record_from_run, train_run
from augbal.data import write_image_folder
from augbal.recipes import RecipeError

torch.set_num_threads(1)


def _folder(root: Path, counts=(40, 12, 6)) -> Path:
    rng = np.random.default_rng(0)
    items = []
    for c, n in enumerate(counts):
        base = np.array([60 + 70 * c, 180 - 50 * c, 90 + 40 * (c % 2)], dtype=np.float64)
        for _ in range(n):
            items.append((np.clip(base + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8), c))
    return write_image_folder(items, root, classes=["cat", "deer", "dog"])


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bench")
    source = _folder(tmp / "data")
    base = {
        "data": {"source": str(source), "val_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0},
        "model": {"weights": "none", "input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "freeze": "head", "epochs": 3, "batch_size": 16, "device": "cpu", "num_workers": 0,
        "optim": {"name": "adam", "lr": 1e-2}, "noise_floor": {"n_boot": 50, "seed": 0},
        "cache": {"enabled": True, "dir": str(tmp / "cache")},
    }
    path = tmp / "bench.yaml"
    path.write_text(json.dumps({"base": base, "strategies": ["ce", "wce:inverse", "logit-adjust"], "seeds": 2}))
    return path


def test_the_grid_expands_to_one_validated_recipe_per_run(bench_file):
    runs = expand_grid(load_bench(bench_file))
    assert [(r.strategy, r.seed) for r in runs] == [(s, k) for s in ("ce", "wce:inverse", "logit-adjust") for k in (0, 1)]
    assert len({r.key for r in runs}) == 6
    assert runs[2].recipe["loss"] == {"name": "wce", "weighting": "balanced", "label_smoothing": 0.0} or \
        runs[2].recipe["loss"]["name"] == "wce"
    assert {r.recipe["seed"] for r in runs} == {0, 1}
    again = expand_grid(load_bench(bench_file))
    assert [r.key for r in again] == [r.key for r in runs]  # the same recipe, the same folder


def test_bad_bench_recipes_name_the_key(bench_file, tmp_path):
    raw = json.loads(bench_file.read_text())
    with pytest.raises(RecipeError, match="bench recipe key strategies: unknown strategy 'nope'"):
        load_bench({**raw, "strategies": ["ce", "nope"]})
    with pytest.raises(RecipeError, match="bench recipe key seeds: each seed must be an integer >= 0; got -1"):
        load_bench({**raw, "seeds": [0, -1]})
    with pytest.raises(RecipeError, match="bench recipe key grid: unknown key"):
        load_bench({**raw, "grid": 1})
    with pytest.raises(RecipeError, match="recipe key epochs"):
        load_bench({**raw, "base": {**raw["base"], "epochs": 0}})


def test_runs_finish_are_skipped_then_and_a_failure_does_not_stop_the_grid(bench_file, tmp_path):
    runs = expand_grid(load_bench(bench_file, strategies=["ce", "logit-adjust"], seeds=1))
    out = tmp_path / "grid"

    def failing_la(payload, folder):
        if payload["strategy"] == "logit-adjust":
            raise RuntimeError("injected failure")
        train_run(payload["recipe"], folder)
        return record_from_run(folder)

    seen = []
    result = run_grid(runs, out, run_fn=failing_la, progress=lambda counts, run: seen.append(dict(counts)))
    ce, la = result.records
    assert ce.ok and ce.strategy == "ce" and 0.0 <= ce.scores["balanced_accuracy"] <= 1.0
    assert len(ce.val_loss) == 3 and ce.train_counts and ce.wall_s > 0
    assert not la.ok and la.error == "RuntimeError: injected failure"
    assert json.loads((Path(la.run_dir) / "error.json").read_text())["error"] == "RuntimeError: injected failure"
    assert seen[-1] == {"total": 2, "done": 2, "skipped": 0, "running": 0, "failed": 1}
    # the second time the finished run is read back, the failed one is run again
    result = run_grid(runs, out)
    assert result.skipped == 1 and all(r.ok for r in result.records)
    assert result.records[0] == ce  # read back from record.json, not retrained
    assert not (Path(result.records[1].run_dir) / "error.json").exists()
    # the test split was scored once, after selection, and the report is made from the records
    test = json.loads((Path(ce.run_dir) / "test.json").read_text())
    assert test["metrics"]["balanced_accuracy"] == ce.scores["balanced_accuracy"]
    report = write_report(result.records, tmp_path / "report")
    assert "logit-adjust" in report.html.read_text()


def test_shards_partition_the_grid(bench_file):
    runs = expand_grid(load_bench(bench_file))
    keys = [r.key for r in runs]
    parts = []
    for i in range(3):
        picked = sorted(runs, key=lambda r: r.key)[i::3]
        parts.append({r.key for r in picked})
    assert set().union(*parts) == set(keys) and sum(map(len, parts)) == len(keys)
    with pytest.raises(ValueError, match="shard index must be"):
        run_grid(runs, "/nonexistent-never-created", shard=(3, 3))


@pytest.fixture(scope="module")
def serial_records(bench_file, tmp_path_factory):
    runs = expand_grid(load_bench(bench_file, strategies=["ce", "wce:inverse"], seeds=1))
    return runs, run_grid(runs, tmp_path_factory.mktemp("serial")).records


def _numbers(records):
    return [(r.strategy, r.seed, r.scores, r.val_loss, r.volatility) for r in records]


@pytest.mark.slow
def test_parallel_processes_give_the_serial_numbers(serial_records, tmp_path):
    runs, serial = serial_records
    parallel = run_grid(runs, tmp_path / "jobs2", jobs=2).records
    assert _numbers(parallel) == _numbers(serial)


@pytest.mark.slow
def test_the_ray_executor_gives_the_serial_numbers(serial_records, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_DISABLE_USAGE_STATS", "1")
    runs, serial = serial_records
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        records = run_grid(runs, tmp_path / "ray", executor="ray", resources={"num_cpus": 1}).records
    finally:
        ray.shutdown()
    assert _numbers(records) == _numbers(serial)
