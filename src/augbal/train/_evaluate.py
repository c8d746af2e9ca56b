"""Scoring a finished run: ``evaluate`` on any folder or manifest, ``evaluate_test`` once on the test split.

Both read the run folder only after ``train`` has written ``selection.json`` (the choice
of checkpoint); neither writes anything ``train`` reads, so a test score cannot influence
which checkpoint was selected.

Checkpoints: ``"selected"`` (``selected.pt``: the winner on validation, after averaging /
cRT / tau-norm, with its post-hoc adjustment), ``"best"`` (``best.pt``: the selector's
epoch), ``"last"`` (the weights in ``last.pt``) or ``"epoch:N"`` (epoch N's weights, kept
by a run with ``log.epoch_checkpoints``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from augbal._atomic import atomic_write_text

from ._json import dumps as strict_json

__all__ = ["check_checkpoint", "evaluate", "evaluate_test"]

_CHECKPOINTS = {"selected": "selected.pt", "best": "best.pt", "last": "last.pt"}
_PRIORS = ("none", "uniform", "em")


def evaluate(
    run_dir: str | os.PathLike[str],
    data: Any,
    *,
    checkpoint: str = "selected",
    prior: str | None = None,
    device: str = "cpu",
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Score a run's checkpoint on the images of ``data`` and write the metrics as JSON.

    Args:
        run_dir: a folder ``augbal train`` finished.
        data: a folder of class sub-folders, a manifest (.csv / .jsonl), or an ``ImageIndex``;
            its classes are matched to the run's by name (a class the run does not know is an
            error naming it).
        checkpoint: ``"selected"``, ``"best"``, ``"last"`` or ``"epoch:N"`` (a run with
            ``log.epoch_checkpoints`` keeps every epoch's weights).
        prior: ``None`` (the selected checkpoint's own post-hoc adjustment, if it has one),
            ``"none"`` (raw logits), ``"uniform"`` (logits adjusted to a uniform prior) or
            ``"em"`` (adjusted to this data's prior as estimated by EM from the posteriors;
            Saerens et al. 2002 — the labels are not used for it).
        device: where the forward passes run.
        out: the JSON file (default ``RUN/evaluations/<data name>[-prior-<prior>]-<hash>-<checkpoint>.json``,
            the hash of the absolute data path and the prior, so other data folders and options do not
            overwrite it; ``epoch:3`` written as ``epoch-3``); its path is ``result["path"]``.

    Returns:
        ``{"checkpoint", "prior", "data", "classes", "metrics": evaluate_logits(...), "path"}``.

    Raises:
        FileNotFoundError: the run folder lacks the checkpoint or ``selection.json``.
        ValueError: an unknown ``checkpoint`` or ``prior``, or a class the run does not know.

    Example:
        >>> evaluate("no-such-run", "data")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no-such-run is not a finished augbal run: no-such-run/selection.json does not exist
    """
    run = Path(run_dir)
    _checkpoint_path(run, checkpoint)  # the name is checked before anything is read
    if prior is not None and prior not in _PRIORS:
        raise ValueError(f"prior must be one of {', '.join(_PRIORS)}; got {prior!r}")
    selection = _selection(run)
    index = _index(data, selection["classes"])
    name = _evaluation_stem(data, prior) if not hasattr(data, "paths") else "index"
    result = _score(run, selection, index, checkpoint=checkpoint, prior=prior, device=device)
    result["data"] = str(data) if not hasattr(data, "paths") else f"ImageIndex of {len(index)} images"
    target = Path(out) if out is not None else run / "evaluations" / f"{name}-{checkpoint.replace(':', '-')}.json"
    atomic_write_text(target, strict_json(result, indent=2) + "\n")
    result["path"] = str(target)
    return result


def _evaluation_stem(data: str | os.PathLike[str], prior: str | None) -> str:
    """The readable, collision-free start of an evaluation's file name: the data's name, the
    ``--prior`` when given, and a short hash of the absolute data path and the prior (so
    ``a/val`` and ``b/val`` do not overwrite each other).

    Example:
        >>> import re
        >>> bool(re.fullmatch(r"val-[0-9a-f]{8}", _evaluation_stem("/x/val", None)))
        True
        >>> _evaluation_stem("/x/val", None) != _evaluation_stem("/y/val", None) != _evaluation_stem("/y/val", "em")
        True
    """
    import hashlib

    resolved = Path(os.path.abspath(os.path.expanduser(str(data))))
    digest = hashlib.sha256(json.dumps([str(resolved), prior]).encode("utf-8")).hexdigest()[:8]
    return "-".join([resolved.stem or "data", *([f"prior-{prior}"] if prior is not None else []), digest])


def evaluate_test(run_dir: str | os.PathLike[str], *, device: str = "cpu") -> dict[str, Any]:
    """Score the selected model once on the recipe's test split; write ``RUN/test.json``.

    Runs only on a finished run (``selection.json`` written): the choice is made before the
    test images are read.

    Raises:
        FileNotFoundError: the run is not finished.
        ValueError: the recipe's data has no test split.
    """
    from augbal.recipes import load_recipe

    from ._data import resolve_data

    run = Path(run_dir)
    selection = _selection(run)
    recipe = load_recipe(run / "recipe.yaml")
    splits = resolve_data(recipe.data, seed=int(recipe.seed))
    if splits.test is None:
        raise ValueError(f"the recipe's data has no test split ({run / 'recipe.yaml'}): nothing to evaluate")
    result = _score(run, selection, splits.test, checkpoint="selected", prior=None, device=device)
    result["data"] = "test split"
    atomic_write_text(run / "test.json", strict_json(result, indent=2) + "\n")
    result["path"] = str(run / "test.json")
    return result


def check_checkpoint(checkpoint: Any) -> str | int:
    """``checkpoint`` as a name of ``_CHECKPOINTS``, or the epoch N of ``"epoch:N"``; else ValueError.

    Example:
        >>> check_checkpoint("best"), check_checkpoint("epoch:3")
        ('best', 3)
    """
    if isinstance(checkpoint, str):
        if checkpoint in _CHECKPOINTS:
            return checkpoint
        if checkpoint.startswith("epoch:") and checkpoint[6:].isdigit():
            return int(checkpoint[6:])
    raise ValueError(f"checkpoint must be one of {', '.join(_CHECKPOINTS)} or 'epoch:N'; got {checkpoint!r}")


def _checkpoint_path(run: Path, checkpoint: Any) -> Path:
    """The file of ``checkpoint`` (see :func:`check_checkpoint`) in ``run``."""
    from ._loop import epoch_checkpoint

    name = check_checkpoint(checkpoint)
    return run / _CHECKPOINTS[name] if isinstance(name, str) else epoch_checkpoint(run, name)


def _selection(run: Path) -> dict[str, Any]:
    path = run / "selection.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a finished augbal run: {path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def _index(data: Any, classes: list[str]) -> Any:
    """The images of ``data`` as an ImageIndex with the run's class numbering."""
    from augbal.data import ImageIndex, scan

    if isinstance(data, ImageIndex):
        index = data
    else:
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"data {path} does not exist")
        index = scan(path)  # a folder of class folders, or a manifest
    unknown = [c for c in index.classes if c not in classes]
    if unknown:
        raise ValueError(f"data classes must be among the run's classes {classes}; got {', '.join(map(repr, unknown))}")
    return index


def _inputs(run: Path, recipe: Any, model: Any, index: Any, eval_policy: Any, device: Any) -> tuple[Any, Any]:
    """``(network, views)`` to score ``index`` with, one dataset per evaluation view: where the run
    trained on a frozen trunk's cached outputs (and the trunk is unchanged, so its key matches), the
    tail on the same feature cache, filled once per image and shared by every run of a grid; else
    the whole model on images."""
    from augbal.data import ImageDataset

    from ._cache import FeatureCache, tail
    from ._freeze import FREEZE_POLICIES
    from ._loop import trunk_hash
    from ._strategies import _spec, cache_level, eval_views

    upto = None
    if getattr(eval_policy, "deterministic", False):
        try:
            upto = cache_level(recipe, FREEZE_POLICIES.from_spec(_spec(recipe.freeze)), int(recipe.epochs))
        except ValueError:
            upto = None
    policies = eval_views(recipe, eval_policy)
    if upto is None:
        return model, tuple(ImageDataset(index, transform=p) for p in policies)
    root = Path(getattr(getattr(recipe, "cache", None), "dir", None) or run / "cache")
    store = FeatureCache(root, dtype="float32" if upto == "features" else "float16")  # as the run stored them
    return tail(model, upto), tuple(
        store.views(model, trunk_hash(model, upto), index, upto=upto, policy=p, num_views=1, device=device)
        for p in policies
    )


def _score(run: Path, selection: dict[str, Any], index: Any, *, checkpoint: str, prior: str | None, device: str) -> dict[str, Any]:
    from ._metrics import evaluate_logits
    from ._posthoc import adjust_logits, estimate_prior_em

    logits, labels, state = checkpoint_logits(run, selection, index, checkpoint=checkpoint, device=device)
    classes = list(selection["classes"])
    train_prior = np.asarray(selection["train_prior"], dtype=np.float64)
    own = state.get("posthoc") if checkpoint == "selected" else None
    applied: dict[str, Any] | None = None
    tau = 1.0
    if prior is None and own:
        applied = dict(own)
        target: Any = np.asarray(own["target_prior"], dtype=np.float64)
        tau = float(own.get("tau", 1.0))
    elif prior == "uniform":
        target = "uniform"
        applied = {"prior": "uniform"}
    elif prior == "em":
        target = estimate_prior_em(torch.softmax(logits.double(), 1).numpy(), train_prior)
        applied = {"prior": "em", "target_prior": np.asarray(target).tolist()}
    else:
        target = None
    if target is not None:
        logits = torch.as_tensor(np.asarray(adjust_logits(logits.numpy(), train_prior=train_prior, target_prior=target, tau=tau)),
                                 dtype=torch.float32)  # fmt: skip
    counts = np.asarray(selection.get("train_counts") or np.round(train_prior * 1e6), dtype=np.int64)
    metrics = evaluate_logits(logits, labels, train_counts=counts, classes=classes)
    return {"checkpoint": checkpoint, "epoch": state.get("epoch"), "prior": applied, "classes": classes, "metrics": metrics}


def checkpoint_logits(
    run: Path, selection: dict[str, Any], index: Any, *, checkpoint: str, device: str
) -> tuple[torch.Tensor, np.ndarray, dict[str, Any]]:
    """``(raw logits, labels in the run's numbering, the checkpoint's saved dict)`` of ``index``
    under ``checkpoint``, scored as the run scores validation (its evaluation views, TTA)."""
    from augbal.recipes import load_recipe

    from ._distributed import DistContext, resolve_device
    from ._loop import _predict
    from ._model import build_model
    from ._strategies import policies

    path = _checkpoint_path(run, checkpoint)
    if not path.is_file():
        hint = "" if checkpoint in _CHECKPOINTS else " (the run kept no epoch checkpoints: set log.epoch_checkpoints)"
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found: {path} does not exist{hint}")
    state = torch.load(path, map_location="cpu", weights_only=checkpoint != "last")
    recipe = load_recipe(run / "recipe.yaml")
    classes = list(selection["classes"])
    info = SimpleNamespace(**selection["weights"])
    m = recipe.model
    model, _ = build_model(
        len(classes), weights="none", cifar_stem=m.cifar_stem, dropout=m.dropout, head=m.head,
        input_size=int(info.input_size), mean=tuple(info.mean), std=tuple(info.std),
    )  # fmt: skip
    model.load_state_dict(state["model"])
    dev = resolve_device(device)
    model.to(dev)
    _, eval_policy = policies(recipe, info, seed=int(recipe.seed))
    # the run's class numbering: data label k is class index.classes[k]
    remap = np.array([classes.index(c) for c in index.classes], dtype=np.int64)
    labels = remap[np.asarray(index.labels, dtype=np.int64)]
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=dev)
    net, inputs = _inputs(run, recipe, model, index, eval_policy, dev)
    logits = _predict(net, inputs, len(labels), ctx, dev, None, False, batch=256)
    return logits, labels, state
