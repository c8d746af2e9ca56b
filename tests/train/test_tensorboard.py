"""The TensorBoard logger: a run with log.tensorboard writes RUN/tensorboard/ with one step per
epoch whose values are metrics.jsonl's; without TensorBoard installed the run is refused at start."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location("_loop_helpers", Path(__file__).resolve().parent / "test_loop.py")
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
make_folder, tiny_recipe, Interrupted, stop_after = (_helpers.make_folder, _helpers.tiny_recipe, _helpers.Interrupted,
                                                   _helpers.stop_after)

TAGS = [
    "lr/0",
    "train/loss",
    "train/loss_unweighted",
    "val/accuracy",
    "val/balanced_accuracy",
    "val/ece",
    "val/geometric_mean",
    "val/loss",
    "val/loss_uniform_prior",
    "val/loss_weighted",
    "val/macro_f1",
    "val/recall/cat",
    "val/recall/deer",
    "val/recall/dog",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("images") / "data")


def read_events(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def expected_value(row: dict, tag: str) -> float:
    """The metrics.jsonl number behind a tag, as TensorBoard stores it (float32)."""
    section, key, *cls = tag.split("/")
    if section == "lr":
        value = row["lr"][int(key)]
    elif cls:
        value = row[section][key][row[section]["classes"].index(cls[0])]
    else:
        value = row[section][key]
    return float(np.float32(value))


def test_a_run_logs_every_epochs_scalars_to_tensorboard(folder, tmp_path):
    from augbal.train import train

    recipe = tiny_recipe(folder, epochs=3, **{"log.tensorboard": True, "cache.dir": str(tmp_path / "cache")})
    run = train(recipe, out=tmp_path / "run").run_dir
    assert [p.name.startswith("events.out.tfevents.") for p in (run / "tensorboard").iterdir()] == [True]
    scalars = read_events(run / "tensorboard")
    assert sorted(scalars) == TAGS
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [0, 1, 2], tag
        assert [value for _, value in points] == [expected_value(row, tag) for row in rows], tag


def test_a_run_without_the_key_writes_no_tensorboard_folder(folder, tmp_path):
    from augbal.train import train

    run = train(tiny_recipe(folder, epochs=1, **{"cache.dir": str(tmp_path / "cache")}), out=tmp_path / "run")
    assert not (run.run_dir / "tensorboard").exists()


def test_a_resumed_run_may_start_logging(folder, tmp_path):
    from augbal.train import train

    recipe = tiny_recipe(folder, epochs=2, **{"cache.dir": str(tmp_path / "cache")})
    with pytest.raises(Interrupted):
        train(recipe, out=tmp_path / "run", progress=stop_after(0))
    train({**recipe, "log": {"tensorboard": True}}, out=tmp_path / "run", resume=True)
    scalars = read_events(tmp_path / "run" / "tensorboard")
    assert sorted(scalars) == TAGS and all([s for s, _ in p] == [1] for p in scalars.values())


def test_without_tensorboard_installed_the_run_is_refused_before_it_writes(folder, tmp_path, monkeypatch):
    from augbal.recipes import RecipeError
    from augbal.train import TensorBoardLogger, train

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # "import tensorboard" now raises ImportError
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    message = (r"^recipe key log.tensorboard: TensorBoard logging needs the tensorboard package, which is not "
               r"installed \(pip install 'augbal\[tensorboard\]'\); got ImportError: ")  # fmt: skip
    with pytest.raises(RecipeError, match=message):
        train(tiny_recipe(folder, **{"log.tensorboard": True}), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    logger = TensorBoardLogger(tmp_path / "tb")  # stores only: the import is tried when it first logs
    with pytest.raises(ImportError, match=r"^TensorBoard logging needs the tensorboard package"):
        logger.log({"epoch": 0, "train": {"loss": 1.0}})
    assert not (tmp_path / "tb").exists()


def test_the_logger_alone_names_its_tags_and_refuses_a_row_without_an_epoch(tmp_path):
    from augbal.train import TensorBoardLogger, history_scalars

    row = {"epoch": 4, "lr": [1e-3, 1e-4], "train": {"loss": 0.5, "note": "x"},
           "val": {"loss": 0.25, "recall": [1.0, 0.5], "classes": ["a", "b"], "confusion": [[1, 0], [1, 1]],
                   "per_class_loss": [0.1, None], "n": [1, 2], "flag": True}}  # fmt: skip
    assert history_scalars(row) == {"lr/0": 1e-3, "lr/1": 1e-4, "train/loss": 0.5, "val/loss": 0.25,
                                    "val/recall/a": 1.0, "val/recall/b": 0.5}  # fmt: skip
    with TensorBoardLogger(tmp_path / "tb") as logger:
        assert logger.log(row) == history_scalars(row)
    assert read_events(tmp_path / "tb") == {tag: [(4, float(np.float32(v)))] for tag, v in history_scalars(row).items()}
    for bad in ({"train": {}}, {"epoch": 1.5}, {"epoch": True}, [0]):
        with pytest.raises(ValueError, match=r"^row must be a metrics.jsonl row \(a dict with an int 'epoch' >= 0\); got "):
            history_scalars(bad)
