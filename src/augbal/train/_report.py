"""The run report: ``run.md``, PNG plots and ``classification_report.txt`` of one run folder.

``write_run_report`` reads only what it is given (the metric history, the selection, the
verdict, the noise floor, optional test numbers), so it can be re-run on a finished run.
Plots are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot
state, no display); every file is written atomically (``augbal._atomic``).

Files written in ``run_dir``:

- ``run.md`` — what ran, the selected checkpoint and why, the "should I worry?" sentence,
  the validation table per class at the selected checkpoint, the test numbers (only when
  given, marked as evaluated once after selection) and one line per epoch;
- ``losses.png`` — train loss as optimised and unweighted; validation loss unweighted,
  class-weighted and corrected to a uniform prior, with a band of ±1 standard deviation of
  sampling noise (the bootstrap :class:`~augbal.train.NoiseFloor`'s ``std``) around the
  validation curve of the floor's own variant (unweighted, or weighted for a weighted floor);
- ``balanced_accuracy.png`` — validation balanced accuracy and macro-F1 per epoch;
- ``confusion.png`` — the confusion matrix of the selected checkpoint;
- ``lr.png`` — the learning rate of each parameter group per epoch;
- ``classification_report.txt`` — ``imblearn.metrics.classification_report_imbalanced`` of
  the selected checkpoint on validation, when ``y_true`` and ``y_pred`` are given.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes, atomic_write_text
from ._metrics import _check_labels, _to_numpy
from ._noise import NoiseFloor, Verdict

__all__ = ["write_run_report"]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Selection:
    epoch: int
    reason: str
    name: str | None
    val: Mapping[str, Any] | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Report:
    """What the report says: ``write_run_report``'s inputs, checked."""

    rows: list[Mapping[str, Any]]
    names: list[str]
    sel: _Selection
    selected: Mapping[str, Any]  # the validation metrics of the selected weights
    sentence: str
    verdict: Verdict | None
    nf: NoiseFloor | None
    test: Mapping[str, Any] | None
    recipe: tuple[str, Mapping[str, Any]] | None  # (YAML text, plain dict)


def _check_history(history: Any) -> list[Mapping[str, Any]]:
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence) or not history:
        raise ValueError(
            f"history must be a non-empty list of metrics.jsonl rows (one dict per epoch); got {history!r}"
        )
    for i, row in enumerate(history):
        if not isinstance(row, Mapping):
            raise ValueError(f"history row {i} must be a dict; got {row!r}")
        for key in ("epoch", "val"):
            if key not in row:
                raise ValueError(f"history row {i} must have the key {key!r}; got keys {sorted(row)}")
        if not isinstance(row["val"], Mapping) or "loss" not in row["val"]:
            raise ValueError(f"history row {i}: 'val' must be an evaluate_logits dict with 'loss'; got {row['val']!r}")
    return list(history)


def _check_selection(selection: Any) -> _Selection:
    """A selection dict (``{"epoch", "reason", ...}``) or a selector (``selected_epoch``, ``reason()``)."""
    if isinstance(selection, Mapping):
        epoch, reason = selection.get("epoch"), selection.get("reason")
        name = selection.get("candidate", selection.get("name"))
        val = selection.get("val")
        skip = {"epoch", "reason", "candidate", "name", "val"}
        extra = {k: v for k, v in selection.items() if k not in skip}
    elif hasattr(selection, "selected_epoch") and callable(getattr(selection, "reason", None)):
        epoch, reason, val = selection.selected_epoch, selection.reason(), None
        spec = selection.to_dict() if callable(getattr(selection, "to_dict", None)) else {}
        name = spec.get("name", type(selection).__name__)
        extra = {"spec": spec} if spec else {}
    else:
        raise ValueError(
            "selection must be a dict with 'epoch' and 'reason' or a selector with selected_epoch and reason(); "
            f"got {selection!r}"
        )
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not isinstance(reason, str):
        raise ValueError(
            f"selection must name an int 'epoch' and a str 'reason'; got epoch={epoch!r}, reason={reason!r}"
        )
    if val is not None and not isinstance(val, Mapping):
        raise ValueError(f"selection 'val' must be an evaluate_logits dict; got {val!r}")
    return _Selection(int(epoch), reason, None if name is None else str(name), val, extra)


def _sentence(verdict: Any) -> tuple[str, Verdict | None]:
    if isinstance(verdict, Verdict):
        return verdict.sentence, verdict
    if isinstance(verdict, str):
        return verdict, None
    if isinstance(verdict, Mapping) and isinstance(verdict.get("sentence"), str):
        return verdict["sentence"], None
    raise ValueError(f"verdict must be a Verdict, its sentence or its to_dict(); got {verdict!r}")


def _check_noise(noise: Any) -> NoiseFloor | None:
    if noise is None or isinstance(noise, NoiseFloor):
        return noise
    if isinstance(noise, Mapping):
        return NoiseFloor.from_dict(noise)
    raise ValueError(f"noise must be a NoiseFloor, its to_dict() or None; got {noise!r}")


def _recipe(recipe: Any) -> tuple[str, Mapping[str, Any]] | None:
    """``(YAML text, plain dict)`` of a ``Recipe`` (its ``to_yaml``/``to_dict``) or a dict."""
    if recipe is None:
        return None
    import yaml

    from .._registry import plain_data

    data = recipe.to_dict() if callable(getattr(recipe, "to_dict", None)) else recipe
    if not isinstance(data, Mapping):
        raise ValueError(f"recipe must be a Recipe, a dict or None; got {recipe!r}")
    data = plain_data(dict(data), what="recipe")
    text = str(recipe.to_yaml()) if callable(getattr(recipe, "to_yaml", None)) else None
    return (text or yaml.safe_dump(data, sort_keys=False)), data


#: (label, recipe path) of the settings the "what ran" line names, when the recipe has them
_SUMMARY = (
    ("weights", ("model", "weights")),
    ("freeze", ("freeze",)),
    ("loss", ("loss",)),
    ("sampler", ("sampler",)),
    ("augmentation", ("augmentation",)),
    ("mixer", ("mixer",)),
    ("optimiser", ("optim",)),
    ("schedule", ("schedule",)),
    ("batch size", ("batch_size",)),
    ("selection", ("selection",)),
    ("seed", ("seed",)),
)


def _summary(data: Mapping[str, Any]) -> str:
    """``loss wce (weighting balanced), optimiser adam (lr 0.001), ...``: the recipe in one line."""
    parts = []
    for label, path in _SUMMARY:
        value = _get(data, *path)
        if value is None:
            continue
        if isinstance(value, Mapping):
            name = value.get("name")
            params = [f"{k} {_short(v)}" for k, v in value.items() if k != "name" and v is not None]
            value = f"{name} ({', '.join(params)})" if params and name is not None else (name or _short(value))
        parts.append(f"{label} {_short(value)}")
    return ", ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("name", "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------- public API


def write_run_report(
    run_dir: str | os.PathLike[str],
    *,
    history: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    verdict: Verdict | str | Mapping[str, Any],
    selection: Mapping[str, Any] | Any,
    noise: NoiseFloor | Mapping[str, Any] | None = None,
    test: Mapping[str, Any] | None = None,
    recipe: Any = None,
    y_true: Any = None,
    y_pred: Any = None,
) -> dict[str, Path]:
    """Write ``run.md``, the plots and the per-class report of a run into ``run_dir``.

    Args:
        run_dir: the run folder (created if missing).
        history: the ``metrics.jsonl`` rows: ``{"epoch", "lr": [...], "train": {"loss",
            "loss_unweighted"}, "val": evaluate_logits(...), "time_s"}``.
        classes: the class names, in label order.
        verdict: the :func:`~augbal.train.worry_verdict` answer (or its sentence).
        selection: ``{"epoch", "reason", "candidate"?, "val"?, ...}`` (``val``: the metrics of
            the selected weights when they are not an epoch's, e.g. an average or a post-hoc
            adjustment) or a selector with ``selected_epoch`` and ``reason()``.
        noise: the :class:`~augbal.train.NoiseFloor` of the validation loss (the band).
        test: test metrics (an ``evaluate_logits`` dict), evaluated once after selection.
        recipe: the resolved recipe (a ``Recipe``, or its dict), shown as YAML.
        y_true, y_pred: validation labels and predictions of the selected checkpoint,
            for ``classification_report.txt`` (both or neither).

    Returns:
        ``{file name: path}`` of every file written.

    Example:
        >>> import tempfile
        >>> val = {"loss": 0.5, "balanced_accuracy": 0.7, "confusion": [[3, 1], [1, 1]], "n": [4, 2]}
        >>> paths = write_run_report(tempfile.mkdtemp(), history=[{"epoch": 0, "val": val}],
        ...     classes=["deer", "cat"], verdict="No need to worry.", selection={"epoch": 0, "reason": "last"})
        >>> sorted(paths)
        ['balanced_accuracy.png', 'confusion.png', 'losses.png', 'lr.png', 'run.md']

    Raises:
        ValueError: naming the argument, for a malformed history, selection, verdict,
            noise floor or test dict, a selected epoch that is not in the history (and no
            ``val`` of its own), class names that do not match the metrics, or only one
            of ``y_true`` / ``y_pred``.
    """
    rows = _check_history(history)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be a non-empty list of class names; got {classes!r}")
    names = [str(c) for c in classes]
    sel = _check_selection(selection)
    sentence, verdict_obj = _sentence(verdict)
    nf = _check_noise(noise)
    if test is not None and not (isinstance(test, Mapping) and "confusion" in test):
        raise ValueError(f"test must be an evaluate_logits dict (with 'confusion') or None; got {test!r}")
    selected = sel.val
    if selected is None:
        at = [row for row in rows if row["epoch"] == sel.epoch]
        if not at:
            epochs = [row["epoch"] for row in rows]
            raise ValueError(f"selection epoch {sel.epoch} is not in the history (epochs {epochs[0]}..{epochs[-1]})")
        selected = at[-1]["val"]
    for what, m in (("selection", selected), ("test", test)):
        if m is not None and len(m.get("confusion", names)) != len(names):
            count = len(m["confusion"])
            raise ValueError(f"classes must name the {count} classes of the {what} metrics; got {names!r}")
    if (y_true is None) != (y_pred is None):
        raise ValueError(
            "y_true and y_pred must be given together (the selected checkpoint's validation labels and predictions)"
        )
    report_text = None
    if y_true is not None:
        report_text = _classification_report(y_true, y_pred, names, sel.epoch)
    report = _Report(rows, names, sel, selected, sentence, verdict_obj, nf, test, _recipe(recipe))
    return _write(Path(run_dir), report, report_text)


def _write(run: Path, r: _Report, report_text: str | None) -> dict[str, Path]:
    run.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, draw in (
        ("losses.png", lambda fig: _plot_losses(fig, r.rows, r.nf, r.sel.epoch)),
        ("balanced_accuracy.png", lambda fig: _plot_balanced(fig, r.rows, r.sel.epoch)),
        ("confusion.png", lambda fig: _plot_confusion(fig, r.selected, r.names, r.sel.epoch)),
        ("lr.png", lambda fig: _plot_lr(fig, r.rows)),
    ):
        paths[name] = atomic_write_bytes(run / name, _render(draw))
    if report_text is not None:
        paths["classification_report.txt"] = atomic_write_text(run / "classification_report.txt", report_text)
    paths["run.md"] = atomic_write_text(run / "run.md", _markdown(r, sorted(paths)))
    return paths


def _classification_report(y_true: Any, y_pred: Any, names: list[str], epoch: int) -> str:
    from imblearn.metrics import classification_report_imbalanced

    t, q = _to_numpy(y_true), _to_numpy(y_pred)
    if t.ndim != 1 or q.shape != t.shape:
        raise ValueError(f"y_true and y_pred must be 1-d and of one length; got shapes {t.shape} and {q.shape}")
    try:
        y = _check_labels(t, t.shape[0], len(names))
        p = _check_labels(q, t.shape[0], len(names))
    except ValueError as exc:
        raise ValueError(f"y_true and y_pred: {exc}") from None
    body = classification_report_imbalanced(
        y, p, labels=list(range(len(names))), target_names=names, digits=3, zero_division=0
    )
    return f"validation, selected checkpoint (epoch {epoch}), {y.shape[0]} images\n\n{body}"


# --------------------------------------------------------------------------- run.md


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def _get(row: Mapping[str, Any], *keys: str) -> Any:
    value: Any = row
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _class_table(m: Mapping[str, Any], names: list[str]) -> list[str]:
    lines = ["| class | n | recall | precision | F1 | loss |", "|---|---:|---:|---:|---:|---:|"]
    for c, name in enumerate(names):

        def at(key: str) -> Any:
            values = m.get(key)
            return values[c] if isinstance(values, Sequence) and c < len(values) else None

        lines.append(
            f"| {name} | {_fmt(at('n'))} | {_fmt(at('recall'))} | {_fmt(at('precision'))} | "
            f"{_fmt(at('f1'))} | {_fmt(at('per_class_loss'))} |"
        )
    summary = ", ".join(
        f"{label} {_fmt(m.get(key))}"
        for key, label in (
            ("balanced_accuracy", "balanced accuracy"),
            ("macro_f1", "macro-F1"),
            ("geometric_mean", "G-mean"),
            ("accuracy", "accuracy"),
            ("loss", "loss (unweighted)"),
            ("loss_weighted", "loss (class-weighted)"),
            ("loss_uniform_prior", "loss (uniform prior)"),
            ("ece", "ECE"),
        )
        if key in m
    )
    return lines + ["", summary + "."]


def _markdown(r: _Report, files: list[str]) -> str:
    epochs = [row["epoch"] for row in r.rows]
    n_val = r.selected.get("n")
    out = ["# Run report", "", "## What ran", ""]
    out.append(f"- {len(r.rows)} epochs ({epochs[0]}..{epochs[-1]}); classes: {', '.join(r.names)}.")
    if isinstance(n_val, Sequence):
        counts = ", ".join(f"{name} {int(k)}" for name, k in zip(r.names, n_val))
        out.append(f"- Validation: {int(sum(n_val))} images ({counts}).")
    times = [row.get("time_s") for row in r.rows if isinstance(row.get("time_s"), (int, float))]
    if times:
        out.append(f"- Training time: {sum(times):.1f} s ({sum(times) / len(times):.2f} s per epoch).")
    if r.recipe is not None:
        summary = _summary(r.recipe[1])
        if summary:
            out.append(f"- Recipe: {summary}.")
        out += ["", "<details><summary>Resolved recipe</summary>", "", "```yaml", r.recipe[0].rstrip("\n"), "```", ""]
        out.append("</details>")
    out += ["", "## Selected checkpoint", ""]
    which = f" ({r.sel.name})" if r.sel.name else ""
    out.append(f"Epoch {r.sel.epoch}{which}: {r.sel.reason}")
    if r.sel.extra.get("posthoc"):
        out.append(f"\nPost-hoc adjustment applied: `{r.sel.extra['posthoc']}`.")
    out.append("\nThe checkpoint was chosen on validation metrics only.")
    out += ["", "## Should I worry?", "", r.sentence]
    if r.verdict is not None:
        late = f"; over the last {r.verdict.late_epochs} epochs ratio {_fmt(r.verdict.late_ratio, 2)}"
        out.append(
            f"\nVolatility {_fmt(r.verdict.volatility)}, noise floor {_fmt(r.verdict.floor)}, "
            f"ratio {_fmt(r.verdict.ratio, 2)} (\"worry\" above {r.verdict.threshold:g})"
            f"{late if r.verdict.late_epochs else ''}."
        )
    if r.nf is not None:
        variant = "class-weighted" if r.nf.weighted else "unweighted"
        out.append(
            f"\nNoise floor of the {variant} validation loss: bootstrap std {_fmt(r.nf.std)} (x sqrt 2 = floor "
            f"{_fmt(r.nf.floor)}), {r.nf.n_boot} {'stratified ' if r.nf.stratified else ''}draws, seed {r.nf.seed}; "
            "share of its variance by class:"
        )
        out += ["", "| class | validation images | share of the noise |", "|---|---:|---:|"]
        for name, count in zip(r.nf.classes, r.nf.n):
            out.append(f"| {name} | {count} | {100 * r.nf.per_class_share.get(name, 0.0):.0f}% |")
    out += ["", f"## Validation at the selected checkpoint (epoch {r.sel.epoch})", ""]
    out += _class_table(r.selected, r.names)
    if r.test is not None:
        out += ["", "## Test", ""]
        out += ["Evaluated once, after the selection; it played no part in choosing the checkpoint.", ""]
        out += _class_table(r.test, r.names)
    out += ["", "## Epochs", ""]
    out.append(
        "| epoch | lr | train loss | train loss (unweighted) | val loss | val loss (weighted) | "
        "val loss (uniform prior) | balanced accuracy | macro-F1 |"
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in r.rows:
        lr = row.get("lr")
        lr_text = ", ".join(f"{float(v):.3g}" for v in lr) if isinstance(lr, Sequence) else _fmt(lr)
        marker = " ←" if row["epoch"] == r.sel.epoch else ""
        out.append(
            f"| {row['epoch']}{marker} | {lr_text} | {_fmt(_get(row, 'train', 'loss'))} | "
            f"{_fmt(_get(row, 'train', 'loss_unweighted'))} | {_fmt(_get(row, 'val', 'loss'))} | "
            f"{_fmt(_get(row, 'val', 'loss_weighted'))} | {_fmt(_get(row, 'val', 'loss_uniform_prior'))} | "
            f"{_fmt(_get(row, 'val', 'balanced_accuracy'))} | {_fmt(_get(row, 'val', 'macro_f1'))} |"
        )
    out += ["", "## Files", ""]
    for name in files:
        if not name.endswith(".png"):
            out += [f"- [{name}]({name})", ""]
    for name in files:
        if name.endswith(".png"):
            out += [f"![{name[:-4]}]({name})", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- plots


def _render(draw: Any) -> bytes:
    """PNG bytes of a figure drawn by ``draw(fig)`` on the Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.5))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.92)  # fixed margins: a layout engine costs 2x
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _series(rows: list[Mapping[str, Any]], *keys: str) -> np.ndarray:
    values = [_get(row, *keys) for row in rows]
    return np.array([math.nan if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v) for v in values])


def _mark(ax: Any, epoch: int) -> None:
    ax.axvline(epoch, color="0.5", linestyle=":", linewidth=1, label=f"selected (epoch {epoch})")


def _plot_losses(fig: Any, rows: list[Mapping[str, Any]], nf: NoiseFloor | None, selected: int) -> None:
    ax = fig.add_subplot()
    x = np.array([row["epoch"] for row in rows], dtype=float)
    lines = (
        (("train", "loss"), "train (as optimised)", "C0", "--"),
        (("train", "loss_unweighted"), "train (unweighted)", "C1", "--"),
        (("val", "loss"), "val (unweighted)", "C2", "-"),
        (("val", "loss_weighted"), "val (class-weighted)", "C3", "-"),
        (("val", "loss_uniform_prior"), "val (uniform prior)", "C4", "-"),
    )
    for keys, label, colour, style in lines:
        y = _series(rows, *keys)
        if np.any(np.isfinite(y)):
            ax.plot(x, y, style, color=colour, label=label, marker="o", markersize=3)
    if nf is not None:
        keys, colour = (("val", "loss_weighted"), "C3") if nf.weighted else (("val", "loss"), "C2")
        y = _series(rows, *keys)
        ax.fill_between(
            x, y - nf.std, y + nf.std, color=colour, alpha=0.2, linewidth=0,
            label=f"±1 s.d. sampling noise ({nf.total} val images)",
        )  # fmt: skip
    _mark(ax, selected)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("Losses")
    ax.legend(fontsize="small")


def _plot_balanced(fig: Any, rows: list[Mapping[str, Any]], selected: int) -> None:
    ax = fig.add_subplot()
    x = np.array([row["epoch"] for row in rows], dtype=float)
    for key, label in (("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")):
        y = _series(rows, "val", key)
        if np.any(np.isfinite(y)):
            ax.plot(x, y, marker="o", markersize=3, label=f"val {label}")
    _mark(ax, selected)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_title("Validation balanced accuracy")
    ax.legend(fontsize="small")


def _plot_confusion(fig: Any, metrics: Mapping[str, Any], names: list[str], epoch: int) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    ax = fig.add_subplot()
    cm = np.asarray(metrics.get("confusion", np.zeros((len(names), len(names)))), dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)  # colour by recall: a minority row shows
    shown = ConfusionMatrixDisplay(confusion_matrix=share, display_labels=names)
    shown.plot(ax=ax, colorbar=False, values_format=".0%", im_kw={"vmin": 0.0, "vmax": 1.0})
    for (i, j), text in np.ndenumerate(shown.text_):
        text.set_text(f"{share[i, j]:.0%}\n({cm[i, j]})")
    ax.set_title(f"Validation confusion (row share and count), selected epoch {epoch}")


def _plot_lr(fig: Any, rows: list[Mapping[str, Any]]) -> None:
    ax = fig.add_subplot()
    x = np.array([row["epoch"] for row in rows], dtype=float)
    lrs = [row.get("lr") for row in rows]
    lrs = [[v] if isinstance(v, (int, float)) else (list(v) if isinstance(v, Sequence) else []) for v in lrs]
    groups = max((len(v) for v in lrs), default=0)
    for g in range(groups):
        y = np.array([float(v[g]) if g < len(v) else math.nan for v in lrs])
        ax.plot(x, y, marker="o", markersize=3, label=f"group {g}")
    finite = [float(v) for row in lrs for v in row if math.isfinite(float(v))]
    if finite and min(finite) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate per parameter group")
    if groups:
        ax.legend(fontsize="small")
