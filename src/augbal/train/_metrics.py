"""Validation metrics of one epoch, from the logits: losses, balanced accuracy, macro-F1,
per-class recall/precision, confusion matrix and expected calibration error.

Scores come from scikit-learn; losses from ``torch.nn.functional.cross_entropy`` in
float64. Three losses are reported because train and validation priors differ:

- ``loss``: the plain mean cross-entropy over the validation samples (unweighted; the
  curve DESIGN.md's *volatility* is measured on);
- ``loss_weighted``: class-weighted by the inverse *train* frequency (``w_c ∝ 1/n_c``,
  the weighting family's ``"balanced"``), normalised as torch's weighted CE is (divided
  by the sum of the weights of the samples), so it equals
  ``cross_entropy(logits, labels, weight=w)``;
- ``loss_uniform_prior``: the mean over the classes present in validation of each
  class's mean cross-entropy: the loss a class-balanced validation set would show.

Every class ``0 .. C-1`` gets an entry in the per-class lists and a row and column of
the confusion matrix, also when the validation set has none of it (its loss, recall and
F1 are then ``None``: undefined, not 0; its precision is 0, or 0 too when it is never
predicted). ``balanced_accuracy``, ``macro_f1`` and
``geometric_mean`` average over the classes present in the validation labels
(scikit-learn's balanced accuracy does so; the others are given the same classes so all
three speak of the same set).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_int

__all__ = ["evaluate_logits", "expected_calibration_error"]


# --------------------------------------------------------------------------- input checks


def _to_numpy(value: Any) -> np.ndarray:
    """A tensor (any device, any dtype, with grad or not) or array-like as a numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _check_scores(name: str, scores: Any) -> np.ndarray:
    """``scores`` as a finite float64 ``(N, C)`` array with N >= 1 and C >= 2."""
    arr = _to_numpy(scores)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ValueError(f"{name} must be a 2-d (N, C) array with N >= 1 and C >= 2; got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1))[0])
        raise ValueError(f"{name} must be finite; got {arr[bad].tolist()} in row {bad}")
    return arr


def _check_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    """``labels`` as an int64 ``(N,)`` array of values in ``[0, C)``."""
    arr = _to_numpy(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"labels must be a 1-d array of {n} class labels (one per row); got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"labels must be integer class labels; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    out = (arr < 0) | (arr >= num_classes)
    if np.any(out):
        raise ValueError(f"labels must be class labels in [0, {num_classes}); got {int(arr[out][0])}")
    return arr


def _check_classes(classes: Sequence[Any] | None, num_classes: int) -> list[str]:
    if classes is None:
        return [str(c) for c in range(num_classes)]
    if isinstance(classes, (str, bytes)) or len(classes) != num_classes:
        raise ValueError(f"classes must be {num_classes} class names, one per logit column; got {classes!r}")
    return [str(c) for c in classes]


def _per_sample_ce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample, float64 (torch's ``cross_entropy``, ``reduction="none"``)."""
    import torch
    import torch.nn.functional as F

    return F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none"
    ).numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    import torch

    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def _mean_or_nan(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    if weights is None:
        return float(values.mean()) if values.size else math.nan
    total = float(weights.sum())
    return float((weights * values).sum() / total) if total > 0 else math.nan


# --------------------------------------------------------------------------- public API


def expected_calibration_error(probs: Any, labels: Any, *, bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width confidence bins (Guo et al. 2017).

    The confidence of a sample is its largest probability and its prediction the class of
    that probability (the first on ties). Bin ``m`` holds confidences in
    ``((m-1)/M, m/M]`` (the first bin also holds 0); ECE = ``Σ_m |B_m|/N · |acc(B_m) −
    conf(B_m)|``.

    Args:
        probs: ``(N, C)`` class probabilities (a tensor or array, values in [0, 1]).
        labels: ``(N,)`` integer labels in ``[0, C)``.
        bins: the number of bins M (>= 1).

    Example:
        >>> round(expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], bins=10), 6)
        0.35

    Raises:
        ValueError: for a bad shape, probabilities outside [0, 1], bad labels or bins.
    """
    bins = check_int("bins", bins, low=1)  # type: ignore[assignment]
    p = _check_scores("probs", probs)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"probs must be probabilities in [0, 1]; got values in [{p.min():g}, {p.max():g}]")
    y = _check_labels(labels, p.shape[0], p.shape[1])
    return _ece(p, y, bins)


def _ece(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    size = np.bincount(which, minlength=bins).astype(np.float64)
    gap = np.abs(np.bincount(which, correct, minlength=bins) - np.bincount(which, confidence, minlength=bins))
    # Σ |B_m|/N |acc − conf| = Σ |Σ_{B_m} correct − Σ_{B_m} conf| / N
    return float(gap[size > 0].sum() / p.shape[0])


def evaluate_logits(
    logits: Any, labels: Any, *, train_counts: Any, classes: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Every validation metric of one epoch, as plain Python floats and lists (JSON-ready).

    Args:
        logits: ``(N, C)`` raw scores (a tensor on any device, or an array).
        labels: ``(N,)`` integer labels in ``[0, C)``.
        train_counts: the per-class *training* counts (length C); they weight
            ``loss_weighted`` by ``1/n_c`` (classes absent from training weigh 0).
        classes: the class names (length C), kept under ``"classes"``; default ``"0"..``.

    Returns:
        ``loss``, ``loss_weighted``, ``loss_uniform_prior`` (see the module docstring),
        ``per_class_loss`` (list, ``None`` for a class absent from validation),
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``geometric_mean`` (of the
        per-class recalls, imbalanced-learn's G-mean), ``recall``, ``precision``,
        ``f1`` (lists, per class; recall and F1 ``None`` for a class absent from validation), ``confusion`` (C x C list, rows = true class),
        ``ece`` (15 bins), ``n`` (validation samples per class) and ``classes``.

    Example:
        >>> m = evaluate_logits([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1], train_counts=[90, 10])
        >>> m["accuracy"], m["balanced_accuracy"], m["recall"], m["confusion"]
        (0.6666666666666666, 0.75, [1.0, 0.5], [[1, 0], [1, 1]])
        >>> round(m["loss"], 4), round(m["loss_weighted"], 4), round(m["loss_uniform_prior"], 4)
        (0.5845, 0.7771, 0.4701)

    Raises:
        ValueError: naming the argument, for a bad shape, non-finite logits, labels
            outside ``[0, C)``, or ``train_counts`` / ``classes`` not of length C.
    """
    from ..sampling import resolve_weighting

    z = _check_scores("logits", logits)
    num_classes = z.shape[1]
    y = _check_labels(labels, z.shape[0], num_classes)
    names = _check_classes(classes, num_classes)
    counts = np.asarray(_to_numpy(train_counts))
    if counts.ndim != 1 or counts.shape[0] != num_classes:
        raise ValueError(
            f"train_counts must hold one training count per class ({num_classes}); got {counts.tolist()!r}"
        )
    class_w = resolve_weighting("balanced").class_weights(counts)
    return _evaluate(z, y, class_w, names)


def _evaluate(z: np.ndarray, y: np.ndarray, class_w: np.ndarray, names: list[str]) -> dict[str, Any]:
    from imblearn.metrics import geometric_mean_score
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    num_classes = z.shape[1]
    everyone = list(range(num_classes))
    n = np.bincount(y, minlength=num_classes)
    present = [c for c in everyone if n[c] > 0]
    losses = _per_sample_ce(z, y)
    per_class = [_mean_or_nan(losses[y == c]) if n[c] else None for c in everyone]
    probs = _softmax(z)
    pred = probs.argmax(axis=1)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": intended
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y, pred)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, labels=everyone, zero_division=0)
    gmean = geometric_mean_score(y, pred, labels=present, average="multiclass")
    return {
        "loss": _mean_or_nan(losses),
        "loss_weighted": _mean_or_nan(losses, class_w[y]),
        "loss_uniform_prior": float(np.mean([per_class[c] for c in present])),
        "per_class_loss": per_class,
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "geometric_mean": float(gmean),
        "recall": [float(v) if n[c] else None for c, v in enumerate(recall)],
        "precision": [float(v) for v in precision],
        "f1": [float(v) if n[c] else None for c, v in enumerate(f1)],
        "confusion": confusion_matrix(y, pred, labels=everyone).tolist(),
        "ece": _ece(probs, y, 15),
        "n": [int(v) for v in n],
        "classes": names,
    }
