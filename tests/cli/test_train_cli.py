"""augbal train / augbal evaluate: exit codes, one Error: line, per-epoch lines, the files written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from augbal.cli import cli

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location(
    "_loop_helpers", Path(__file__).resolve().parents[1] / "train" / "test_loop.py"
)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="augbal")


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _helpers.make_folder(tmp_path_factory.mktemp("images") / "data")


@pytest.fixture(scope="module")
def recipe_file(folder, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
    path.write_text(yaml.safe_dump(_helpers.tiny_recipe(folder)))
    return path


@pytest.fixture(scope="module")
def finished(recipe_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("train", "--recipe", str(recipe_file), "--out", str(run))
    return run, result


def test_train_prints_one_line_per_epoch_the_choice_the_verdict_and_the_test_score(finished):
    run, result = finished
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line[:14] for line in lines[:2]] == ["[1/2] epoch 0 ", "[2/2] epoch 1 "]
    assert sum(line.startswith("[") for line in lines) == 2
    assert " train loss " in lines[0] and " bal-acc " in lines[0] and " lr 0.001 " in lines[0]
    selection = json.loads((run / "selection.json").read_text())
    assert f"selected: {selection['candidate']} — {selection['reason']}" in lines
    assert selection["verdict"] in result.output
    assert "test, evaluated once after selection" in result.output
    test = json.loads((run / "test.json").read_text())
    assert f"{test['metrics']['balanced_accuracy']:.4f}" in result.output
    assert lines[-1] == f"run folder: {run}"


def test_a_bad_recipe_is_exit_2_with_one_error_line(recipe_file, tmp_path):
    result = invoke("train", "--recipe", str(recipe_file), "--set", "optim.lr=-1", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert error_lines(result.output) == ["Error: recipe key optim.lr: must be a number > 0; got -1"]
    assert not (tmp_path / "x").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: demo}\nepochs: zero\n")
    result = invoke("train", "--recipe", str(bad), "--out", str(tmp_path / "y"))
    assert result.exit_code == 2 and len(error_lines(result.output)) == 1
    assert "epochs" in error_lines(result.output)[0]


def test_an_occupied_out_and_a_resume_without_a_run_are_exit_2(finished, recipe_file, tmp_path):
    run, _ = finished
    result = invoke("train", "--recipe", str(recipe_file), "--out", str(run))
    assert result.exit_code == 2
    assert error_lines(result.output) == [f"Error: Invalid value for '--out': run folder {run} already holds a run "
                                          "(last.pt, metrics.jsonl, selection.json); pass resume=True (--resume) to "
                                          "continue it, or choose another folder"]  # fmt: skip
    result = invoke("train", "--recipe", str(recipe_file), "--out", str(tmp_path / "none"), "--resume")
    assert result.exit_code == 2
    assert error_lines(result.output) == [
        f"Error: Invalid value for '--resume': nothing to resume: {tmp_path / 'none' / 'last.pt'} does not exist"
    ]


def test_evaluate_scores_a_folder_prints_a_table_and_writes_json(finished, folder):
    run, _ = finished
    result = invoke("evaluate", str(run), "--data", str(folder))
    assert result.exit_code == 0, result.output
    written = Path(result.output.split("written: ")[1].strip())
    assert written.parent == run / "evaluations" and written.name.startswith("data-")
    assert written.name.endswith("-selected.json")
    scored = json.loads(written.read_text())
    assert scored["metrics"]["n"] == [48, 16, 8]
    assert f"{scored['metrics']['balanced_accuracy']:.4f}" in result.output
    result = invoke("evaluate", str(run), "--data", str(folder), "--prior", "em", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    other = Path(result.output.split("written: ")[1].strip())
    assert other != written and other.name.startswith("data-prior-em-") and other.name.endswith("-last.json")
    assert json.loads(other.read_text())["prior"]["prior"] == "em"


def test_evaluate_checkpoint_names_an_epoch_or_is_exit_2(finished, folder):
    run, _ = finished
    result = invoke("evaluate", str(run), "--data", str(folder), "--checkpoint", "first")
    assert result.exit_code == 2
    assert "checkpoint must be one of selected, best, last or 'epoch:N'; got 'first'" in result.output
    result = invoke("evaluate", str(run), "--data", str(folder), "--checkpoint", "epoch:1")
    assert result.exit_code == 2  # the run kept no epoch checkpoints
    assert error_lines(result.output) == [
        f"Error: checkpoint 'epoch:1' not found: {run / 'epochs' / 'epoch-001.pt'} does not exist "
        "(the run kept no epoch checkpoints: set log.epoch_checkpoints)"
    ]


def test_evaluate_of_a_folder_that_is_not_a_run_is_exit_2(folder, tmp_path):
    result = invoke("evaluate", str(tmp_path), "--data", str(folder))
    assert result.exit_code == 2
    assert error_lines(result.output) == [
        f"Error: {tmp_path} is not a finished augbal run: {tmp_path / 'selection.json'} does not exist"
    ]


def test_find_lr_saves_the_plot_and_prints_the_suggestion(recipe_file, tmp_path):
    result = invoke("train", "--recipe", str(recipe_file), "--out", str(tmp_path / "lr"), "--find-lr")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 0
    assert result.output.startswith("suggested learning rate: ")
    assert not (tmp_path / "lr" / "metrics.jsonl").exists()


def test_python_dash_m_augbal_routes_to_the_train_command():
    done = subprocess.run([sys.executable, "-m", "augbal", "train", "--help"], capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(p for p in sys.path if p), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--recipe R.yaml" in done.stdout and "--find-lr" in done.stdout


@pytest.mark.parametrize(
    ("override", "key", "rule"),
    [
        ("sampler={name: class_aware, weighting: balance}", "sampler.weighting", "got 'balance'"),
        ("sampler={name: class_aware, num_samples: 0}", "sampler.num_samples", "got 0"),
        ("mixer={name: remix, kappa: 0.5}", "mixer.kappa", "got 0.5"),
        ("sampler={name: balanced_batch, classes_per_batch: 4}", "sampler.classes_per_batch", "got 4"),
        ("selection.metric=bal_acc", "selection.metric", "got 'bal_acc'"),
        ("data.classes=[cat, dgo]", "data.classes", "'dgo'"),
        ("strategy.crt={epochs: 1, sampler: {name: class_aware, weighting: balnced}}", "strategy.crt.sampler.weighting",
         "got 'balnced'"),
        ("strategy.crt={epochs: 1, sampler: {name: class_aware, num_samples: 0}}", "strategy.crt.sampler.num_samples",
         "got 0"),
        ("sampler={name: class_aware, weighting: {dgo: 10}}", "sampler.weighting", "cat, deer, dog"),
        ("loss={name: wce, weighting: {dgo: 10}}", "loss.weighting", "cat, deer, dog"),
        ("augmentation={name: class_conditional, policies: {dgo: heavy}}", "augmentation.policies", "cat, deer, dog"),
        ("sampler={name: resampled, sampling_strategy: {dgo: 10}}", "sampler.sampling_strategy", "cat, deer, dog"),
    ],
)
def test_a_bad_component_value_is_exit_2_naming_the_key_before_any_training(recipe_file, tmp_path, override, key, rule):
    run = tmp_path / "run"
    result = invoke("train", "--recipe", str(recipe_file), "--set", override, "--out", str(run))
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith(f"Error: recipe key {key}: "), result.output
    assert rule in lines[0] and "training failed" not in result.output
    assert "classes=" not in lines[0] and "allow_empty" not in lines[0] and not lines[0].startswith('Error: "')
    assert not (run / "metrics.jsonl").exists() and not (run / "last.pt").exists()


@pytest.mark.parametrize(
    "override",
    [
        "sampler={name: class_aware, weighting: {dog: 10}}",
        "loss={name: wce, weighting: {dog: 10}}",
        "augmentation={name: class_conditional, policies: {dog: heavy}}",
        "sampler={name: resampled, sampling_strategy: {dog: 100}}",
    ],
)
def test_class_names_as_keys_in_component_specs_train(recipe_file, tmp_path, override):
    run = tmp_path / "run"
    result = invoke("train", "--recipe", str(recipe_file), "--set", override, "--set", "epochs=1", "--no-test",
                    "--out", str(run))
    assert result.exit_code == 0, result.output
    assert (run / "selection.json").exists()


def test_device_takes_what_a_recipe_takes(tmp_path) -> None:
    from click.testing import CliRunner

    from augbal.cli import cli

    (tmp_path / "x.yaml").write_text("data: {source: demo}\n")
    bad = CliRunner().invoke(cli, ["train", "--recipe", str(tmp_path / "x.yaml"), "--device", "gpu"])
    assert bad.exit_code == 2 and "Invalid value for '--device': must be auto, cpu, cuda or cuda:N; got 'gpu'" in bad.output
    from augbal.cli._params import Device

    assert Device().convert("cuda:1", None, None) == "cuda:1"  # a recipe's device: cuda:N (it was refused here)
