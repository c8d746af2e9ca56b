"""One grid run: train the recipe into its folder, score the test split once, read the record back.

The record is what the report needs, read from the run folder's JSON: ``selection.json``
(the candidate chosen on validation, the volatility and its noise floor, class counts),
``metrics.jsonl`` (the validation-loss curve) and ``test.json`` (written once, after the
selection, by ``augbal.train.evaluate_test``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text

__all__ = ["record_from_run", "train_run"]

TIMING = "bench_time.json"


def train_run(recipe: Mapping[str, Any], folder: str) -> None:
    """Train ``recipe`` into ``folder``: skip a finished run, resume a half one from ``last.pt``."""
    from augbal.train import train

    run = Path(folder)
    if (run / "selection.json").exists():
        return
    resume = (run / "last.pt").exists()
    started = time.perf_counter()
    train(dict(recipe), out=run, resume=resume)
    wall = time.perf_counter() - started
    previous = _timing(run).get("wall_s", 0.0) if resume else 0.0
    atomic_write_text(run / TIMING, json.dumps({"wall_s": previous + wall, "resumed": resume}) + "\n", fsync=False)


def _timing(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / TIMING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_from_run(folder: str) -> dict[str, Any]:
    """The run record of a trained run folder (scoring its test split first if not yet done)."""
    from augbal.train import evaluate_test

    run = Path(folder)
    selection = json.loads((run / "selection.json").read_text(encoding="utf-8"))
    test_path = run / "test.json"
    if test_path.exists():
        test = json.loads(test_path.read_text(encoding="utf-8"))
    else:
        test = evaluate_test(run)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    recipe_epochs = len(history)
    counts = list(selection.get("train_counts") or [])
    wall = _timing(run).get("wall_s", sum(float(row.get("time_s", 0.0)) for row in history))
    seen = sum(counts) * recipe_epochs
    return {
        "classes": list(selection.get("classes") or test.get("classes") or []),
        "train_counts": counts,
        "scores": dict(test.get("metrics") or {}),
        "val_scores": dict(selection.get("val") or {}),
        "volatility": selection.get("volatility"),
        "noise_floor": selection.get("floor"),
        "val_loss": [float(row["val"]["loss"]) for row in history],
        "selected": f"{selection.get('candidate')} (epoch {selection.get('epoch')}): {selection.get('reason', '')}",
        "verdict": selection.get("verdict", ""),
        "wall_s": float(wall),
        "images_per_s": float(seen / wall) if wall > 0 else None,
    }
