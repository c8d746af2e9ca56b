"""Checkpoint-selection rules compared on the same training runs (every rule chooses on validation).

A run trained with ``log.epoch_checkpoints`` keeps every epoch's weights, so one set of
training runs answers "which rule picks the better checkpoint?" without retraining: each
rule below sees only the per-epoch *validation* logits and labels, and its choice (an epoch,
or a set of epochs whose logits are averaged) is then scored once on test. Training does
not depend on the rule, so the comparison isolates selection.

The logits are those the run scores validation with (its evaluation views: flip TTA when
the recipe has it) and, for runs with ``strategy.posthoc``, adjusted to the uniform prior
(tau 1), as the ``posthoc-uniform*`` strategies choose their epoch.

Rules:

- ``best``: the epoch of highest balanced accuracy (the earlier on ties): the grid's rule;
- ``smoothed-3``: the epoch ending the best trailing 3-epoch mean of balanced accuracy;
- ``best-loss``: the epoch of lowest loss corrected to the uniform prior (continuous, so
  less at the mercy of one of 18 validation cats flipping);
- ``last``: the last epoch;
- ``ens-best+last``: the mean logits of the best and the last epoch;
- ``ens-top3``: the mean logits of the 3 epochs of highest validation balanced accuracy;
- ``ens-last5``: the mean logits of the last 5 epochs (a prediction average, not SWA's
  weight average);
- ``pick(best, ens-best+last)``: whichever of the two scores higher on validation (ties:
  ``best``), the way a run chooses among its candidates.

    python benchmarks/selection_rules.py /work/bench-grid --strategy posthoc-uniform+mixup+layer4+tta
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from augbal.recipes import load_recipe
from augbal.train._data import resolve_data
from augbal.train._evaluate import checkpoint_logits
from augbal.train._metrics import evaluate_logits
from augbal.train._posthoc import adjust_logits


def epoch_logits(run: Path, index, selection: dict, epochs: int, posthoc: bool) -> tuple[list[torch.Tensor], np.ndarray]:
    prior = np.asarray(selection["train_prior"], dtype=np.float64)
    out, labels = [], None
    for e in range(epochs):
        logits, labels, _ = checkpoint_logits(run, selection, index, checkpoint=f"epoch:{e}", device="cpu")
        if posthoc:
            logits = torch.as_tensor(np.asarray(adjust_logits(logits.numpy(), train_prior=prior, target_prior="uniform")),
                                     dtype=torch.float32)  # fmt: skip
        out.append(logits)
    return out, labels


def score(logits: torch.Tensor, labels: np.ndarray, counts: np.ndarray, classes: list[str]) -> dict:
    return evaluate_logits(logits, labels, train_counts=counts, classes=classes)


def rules(val: list[dict], val_logits: list[torch.Tensor], labels, counts, classes) -> dict[str, list[int]]:
    """Each rule's choice: the epochs whose (mean) logits are the model."""
    acc = np.array([m["balanced_accuracy"] for m in val])
    loss = np.array([m["loss_uniform_prior"] for m in val])
    n = len(acc)
    best = int(np.argmax(acc))  # the earlier on ties
    smooth = np.array([acc[max(0, e - 2) : e + 1].mean() for e in range(n)])
    full = smooth[2:] if n >= 3 else smooth
    smoothed = int(len(full) - 1 - np.argmax(full[::-1])) + (2 if n >= 3 else 0)  # the later on ties
    top3 = sorted(np.argsort(-acc, kind="stable")[:3].tolist())
    chosen = {
        "best": [best],
        "smoothed-3": [smoothed],
        "best-loss": [int(np.argmin(loss))],
        "last": [n - 1],
        "ens-best+last": sorted({best, n - 1}),
        "ens-top3": top3,
        "ens-last5": list(range(max(0, n - 5), n)),
    }
    ens = score(torch.stack([val_logits[e] for e in chosen["ens-best+last"]]).mean(0), labels, counts, classes)
    chosen["pick(best, ens-best+last)"] = chosen["ens-best+last"] if ens["balanced_accuracy"] > acc[best] else [best]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("grid", type=Path, help="an augbal bench --out folder (runs/<hash>/)")
    parser.add_argument("--strategy", required=True, help="the bench strategy whose runs to compare")
    parser.add_argument("--out", type=Path, default=None, help="write the per-seed table as JSON")
    args = parser.parse_args()
    torch.set_num_threads(2)

    table: dict[str, dict[int, dict]] = {}
    for run in sorted((args.grid / "runs").iterdir()):
        meta = json.loads((run / "spec.json").read_text()) if (run / "spec.json").exists() else {}
        if meta.get("strategy") != args.strategy or not (run / "epochs").is_dir() or not (run / "selection.json").exists():
            continue
        recipe = load_recipe(run / "recipe.yaml")
        selection = json.loads((run / "selection.json").read_text())
        classes, counts = list(selection["classes"]), np.asarray(selection["train_counts"], dtype=np.int64)
        splits = resolve_data(recipe.data, seed=int(recipe.seed))
        posthoc = recipe.strategy.posthoc is not None
        epochs = int(recipe.epochs)
        val_logits, val_labels = epoch_logits(run, splits.val, selection, epochs, posthoc)
        test_logits, test_labels = epoch_logits(run, splits.test, selection, epochs, posthoc)
        val = [score(v, val_labels, counts, classes) for v in val_logits]
        for name, members in rules(val, val_logits, val_labels, counts, classes).items():
            mean = lambda side: torch.stack([side[e] for e in members]).mean(0)  # noqa: E731
            v = score(mean(val_logits), val_labels, counts, classes)["balanced_accuracy"]
            t = score(mean(test_logits), test_labels, counts, classes)["balanced_accuracy"]
            table.setdefault(name, {})[int(recipe.seed)] = {"epochs": members, "val": v, "test": t}
        per_epoch = [score(t, test_labels, counts, classes)["balanced_accuracy"] for t in test_logits]
        print(f"seed {recipe.seed}: val " + " ".join(f"{m['balanced_accuracy']:.3f}" for m in val))
        print(f"        test " + " ".join(f"{a:.3f}" for a in per_epoch), flush=True)

    print("\n| rule | test balanced accuracy (mean ± std) | per seed: test (epochs) |")
    print("|---|---|---|")
    for name, seeds in table.items():
        tests = np.array([s["test"] for s in seeds.values()])
        cells = ", ".join(f"{s['test']:.3f} ({'+'.join(map(str, s['epochs']))})" for _, s in sorted(seeds.items()))
        print(f"| {name} | {tests.mean():.3f} ± {tests.std(ddof=1) if len(tests) > 1 else 0:.3f} | {cells} |")
    if args.out is not None:
        args.out.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
