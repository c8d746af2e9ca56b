"""Resume: an interrupted run continued from last.pt equals an uninterrupted one, byte for byte."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location("_loop_helpers", Path(__file__).with_name("test_loop.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
make_folder, tiny_recipe, without_timing = _helpers.make_folder, _helpers.tiny_recipe, _helpers.without_timing
Interrupted, stop_after = _helpers.Interrupted, _helpers.stop_after


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("images") / "data")


def recipe_for(folder: Path, **extra):
    # layer4 trained on images, a class-aware sampler, augmentation, a plateau schedule and dropout:
    # every piece of state that resuming must restore
    return tiny_recipe(
        folder, epochs=3, freeze={"name": "layer4"}, sampler={"name": "class_aware"}, augmentation={"name": "light"},
        schedule={"name": "plateau", "metric": "loss", "patience": 0, "factor": 0.5},
        **{"cache.enabled": False, "model.dropout": 0.2}, **extra,
    )  # fmt: skip


def test_a_run_stopped_after_an_epoch_resumes_exactly(folder, tmp_path):
    from augbal.train import train

    recipe = recipe_for(folder)
    whole = train(recipe, out=tmp_path / "whole")
    with pytest.raises(Interrupted):
        train(recipe, out=tmp_path / "cut", progress=stop_after(0))
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 1
    resumed = train(recipe, out=tmp_path / "cut", resume=True)
    assert without_timing(resumed.run_dir / "metrics.jsonl") == without_timing(whole.run_dir / "metrics.jsonl")
    assert_same_weights(weights(whole.run_dir / "last.pt"), weights(resumed.run_dir / "last.pt"))
    assert_same_weights(weights(whole.run_dir / "selected.pt"), weights(resumed.run_dir / "selected.pt"))
    assert resumed.selected_epoch == whole.selected_epoch and resumed.reason == whole.reason


def test_a_killed_process_resumes_exactly(folder, tmp_path):
    """A real SIGKILL while training (layer3 activations cached, layer4 trained on them)."""
    from augbal.train import train

    recipe = tiny_recipe(folder, epochs=4, freeze={"name": "layer4"}, sampler={"name": "class_aware"},
                         **{"cache.dir": str(tmp_path / "cache")})  # fmt: skip
    whole = train(recipe, out=tmp_path / "whole")
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    script = (
        "import json, sys, time, torch\n"
        "torch.set_num_threads(1)  # as this test process: CPU float sums depend on the thread count\n"
        "from augbal.train import train\n"
        "def slow(row):\n"
        "    time.sleep(1.0)  # leave the parent time to kill us between epochs or inside one\n"
        f"train(json.load(open({str(tmp_path / 'recipe.json')!r})), out={str(tmp_path / 'killed')!r}, progress=slow)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(tmp_path / "killed" / "last.pt", weights_only=False)
    assert 1 <= saved["epoch"] < 3
    resumed = train(recipe, out=tmp_path / "killed", resume=True)
    assert without_timing(resumed.run_dir / "metrics.jsonl") == without_timing(whole.run_dir / "metrics.jsonl")
    assert_same_weights(weights(whole.run_dir / "last.pt"), weights(resumed.run_dir / "last.pt"))


def test_resuming_with_another_recipe_is_refused_naming_the_key(folder, tmp_path):
    from augbal.recipes import RecipeError
    from augbal.train import train

    recipe = tiny_recipe(folder, epochs=2)
    with pytest.raises(Interrupted):
        train(recipe, out=tmp_path / "run", progress=stop_after(0))
    changed = tiny_recipe(folder, epochs=2, optim={"name": "adam", "lr": 3e-4})
    with pytest.raises(RecipeError, match=r"recipe key optim\.lr: must equal the saved run's .* got 0\.0003, the run was started with 0\.001"):
        train(changed, out=tmp_path / "run", resume=True)


def test_resuming_a_folder_without_a_run_is_refused(folder, tmp_path):
    from augbal.train import train

    with pytest.raises(FileNotFoundError, match="nothing to resume: .*last.pt does not exist"):
        train(tiny_recipe(folder), out=tmp_path / "empty", resume=True)
