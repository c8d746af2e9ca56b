"""The benchmark report: ``report.md`` and a self-contained ``report.html`` (plots embedded).

Made from run records alone (the JSON of the run folders): the main table, the paired
differences against the baselines, the recommendation, validation-loss curves with their
noise floor, per-class recall, confusion matrices and reliability diagrams. matplotlib draws
with the Agg backend; the HTML needs no network to view.
"""

from __future__ import annotations

import base64
import html
import io
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes, atomic_write_text
from ._aggregate import METRICS, Cell, RunRecord, aggregate, compare, recommend, shot_accuracy

__all__ = ["Report", "write_report"]

_SELECTION_RULE = (
    "Each run's checkpoint is chosen on the validation split only; the test split is evaluated "
    "once per run, after the choice, and the numbers below are those test scores."
)


@dataclass(frozen=True)
class Report:
    """Paths of a written report and the recommendation sentences it states (one per split)."""

    markdown: Path
    html: Path
    plots: tuple[Path, ...]
    recommendations: Mapping[str, str]


def _figure_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _strategies(records: Sequence[RunRecord], split: str) -> list[str]:
    return sorted({r.strategy for r in records if r.split == split and r.ok})


def _loss_curves(records: Sequence[RunRecord], split: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colours = plt.get_cmap("tab20")
    for k, strategy in enumerate(_strategies(records, split)):
        runs = [r for r in records if r.split == split and r.strategy == strategy and r.ok and r.val_loss]
        if not runs:
            continue
        length = min(len(r.val_loss) for r in runs)
        curves = np.asarray([r.val_loss[:length] for r in runs], dtype=np.float64)
        mean = curves.mean(axis=0)
        epochs = np.arange(1, length + 1)
        colour = colours(k % 20)
        ax.plot(epochs, mean, color=colour, label=strategy, lw=1.5)
        floors = [r.noise_floor for r in runs if not math.isnan(r.noise_floor)]
        if floors:
            half = float(np.mean(floors)) / 2.0
            ax.fill_between(epochs, mean - half, mean + half, color=colour, alpha=0.12, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (unweighted)")
    ax.set_title(f"{split}: validation loss, mean over seeds; band = ± half the noise floor")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    return _figure_png(fig)


def _class_names(records: Sequence[RunRecord], split: str) -> list[str]:
    for r in records:
        if r.split == split and r.ok and r.classes:
            return list(r.classes)
    n = max((len(r.scores.get("recall") or ()) for r in records if r.split == split and r.ok), default=0)
    return [str(i) for i in range(n)]


def _recall_bars(records: Sequence[RunRecord], split: str) -> bytes:
    plt = _pyplot()
    strategies = _strategies(records, split)
    classes = _class_names(records, split)
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * max(4, len(strategies)) + 1.2))
    height = 0.8 / max(1, len(classes))
    for c, name in enumerate(classes):
        means = []
        for strategy in strategies:
            vals = [r.scores["recall"][c] for r in records
                    if r.split == split and r.strategy == strategy and r.ok and len(r.scores.get("recall") or ()) > c
                    and r.scores["recall"][c] is not None]
            means.append(float(np.mean(vals)) if vals else math.nan)
        ax.barh(np.arange(len(strategies)) + c * height, means, height=height, label=name)
    ax.set_yticks(np.arange(len(strategies)) + 0.4 - height / 2, strategies, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test recall (mean over seeds)")
    ax.set_title(f"{split}: per-class recall")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _figure_png(fig)


def _confusions(records: Sequence[RunRecord], split: str) -> bytes:
    plt = _pyplot()
    strategies = [s for s in _strategies(records, split)
                  if any(r.scores.get("confusion") for r in records if r.split == split and r.strategy == s and r.ok)]
    classes = _class_names(records, split)
    cols = min(4, max(1, len(strategies)))
    rows = max(1, math.ceil(len(strategies) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, strategy in zip(axes.ravel(), strategies):
        mats = [np.asarray(r.scores["confusion"], dtype=np.float64) for r in records
                if r.split == split and r.strategy == strategy and r.ok and r.scores.get("confusion")]
        total = np.sum(mats, axis=0)
        rowsum = total.sum(axis=1, keepdims=True)
        norm = np.divide(total, rowsum, out=np.zeros_like(total), where=rowsum > 0)
        ax.axis("on")
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(norm):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.6 else "black")
        ax.set_title(strategy, fontsize=8)
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, fontsize=6, rotation=45)
        ax.set_yticks(ticks, classes, fontsize=6)
    fig.suptitle(f"{split}: confusion (rows: true class, normalised; summed over seeds)", fontsize=9)
    return _figure_png(fig)


def _reliability(records: Sequence[RunRecord], split: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for strategy in _strategies(records, split):
        conf, acc, count = None, None, None
        for r in records:
            rel = r.scores.get("reliability") if (r.split == split and r.strategy == strategy and r.ok) else None
            if not rel:
                continue
            c, a, n = (np.asarray(rel[k], dtype=np.float64) for k in ("confidence", "accuracy", "count"))
            if conf is None:
                conf, acc, count = c * n, a * n, n.copy()
            elif len(c) == len(conf):
                conf, acc, count = conf + c * n, acc + a * n, count + n
        if count is None:
            continue
        keep = count > 0
        ax.plot(conf[keep] / count[keep], acc[keep] / count[keep], marker="o", ms=3, lw=1, label=strategy)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{split}: reliability (test, pooled over seeds)")
    ax.legend(fontsize=6, frameon=False)
    ax.grid(alpha=0.3)
    return _figure_png(fig)


_PLOTS = (
    ("val_loss", "Validation-loss curves with the noise-floor band", _loss_curves),
    ("recall", "Per-class recall", _recall_bars),
    ("confusion", "Confusion matrices", _confusions),
    ("reliability", "Reliability diagrams", _reliability),
)


def _fmt_ci(cell: Cell, digits: int = 3) -> str:
    if cell.n < 2:
        return ""
    return f"[{cell.ci[0]:.{digits}f}, {cell.ci[1]:.{digits}f}]"


def _main_rows(records: Sequence[RunRecord], split: str, table: Mapping[tuple[str, str], Mapping[str, Cell]]) -> list[list[str]]:
    rows = []
    keyed = sorted(((k, v) for k, v in table.items() if k[0] == split),
                   key=lambda kv: -kv[1]["balanced_accuracy"].mean if not math.isnan(kv[1]["balanced_accuracy"].mean) else 0)
    for (_, strategy), cells in keyed:
        row = [strategy, str(cells["balanced_accuracy"].n)]
        for metric in METRICS:
            digits = 1 if metric == "wall_s" else 3
            row.append(cells[metric].text(digits))
        row.append(_fmt_ci(cells["balanced_accuracy"]))
        rows.append(row)
    return rows


def _header() -> list[str]:
    return ["strategy", "seeds", *[METRICS[m][0] for m in METRICS], "bal. acc. 95% CI"]


def _comparison_rows(records: Sequence[RunRecord], split: str, baselines: Sequence[str]) -> list[list[str]]:
    rows = []
    for baseline in baselines:
        for c in compare(records, baseline=baseline):
            if c.split != split:
                continue
            rows.append([c.strategy, baseline, f"{100 * c.diff:+.1f}", f"[{100 * c.ci[0]:+.1f}, {100 * c.ci[1]:+.1f}]",
                         str(len(c.seeds)), "yes" if c.significant else "no"])
    return rows


def _shot_rows(records: Sequence[RunRecord], split: str) -> list[list[str]]:
    rows = []
    for strategy in _strategies(records, split):
        groups: dict[str, list[float]] = {"many": [], "medium": [], "few": []}
        for r in records:
            if r.split == split and r.strategy == strategy and r.ok and r.scores.get("recall") and r.train_counts:
                for k, v in shot_accuracy(r.scores["recall"], r.train_counts).items():
                    if not math.isnan(v):
                        groups[k].append(v)
        rows.append([strategy, *[f"{np.mean(v):.3f}" if v else "n/a" for v in groups.values()]])
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:0.8em 0;font-size:0.86em}
th,td{border:1px solid #ccc;padding:0.3em 0.55em;text-align:right}th:first-child,td:first-child{text-align:left}
thead{background:#f4f4f4}.rec{background:#eef6ee;border-left:4px solid #3a3;padding:0.6em 1em}
.meta{color:#555;font-size:0.86em}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4;padding:0 0.2em}
"""


def _installed_versions() -> dict[str, str]:
    """Python's version and the installed versions of the libraries a run depends on (metadata only)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("augbal", "torch", "torchvision", "numpy", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def write_report(
    records: Sequence[RunRecord | Mapping[str, Any]],
    out_dir: str | Path,
    *,
    title: str = "augbal benchmark",
    command: str = "",
    baselines: Sequence[str] = ("ce", "wce:inverse"),
    versions: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` for the given runs into ``out_dir``.

    Args:
        records: run records (or their dicts), finished and failed.
        out_dir: the folder to write into (created).
        title: the report's heading.
        command: the command that made the runs, stated in the report.
        baselines: strategies the others are compared with on paired seeds; the recommendation
            sets the best against the last of them that ran (weighted CE by default), else the others.
        versions: library versions to state (default: Python's and those of augbal, torch,
            torchvision, numpy, scikit-learn, as installed; read from package metadata, no import).
        notes: extra lines for the report's "About" section.

    Example:
        >>> import tempfile
        >>> runs = [{"strategy": s, "split": "toy", "seed": k, "train_counts": [90, 10], "classes": ["a", "b"],
        ...          "scores": {"balanced_accuracy": v, "recall": [0.9, v], "confusion": [[9, 1], [3, 7]]},
        ...          "val_loss": [0.9, 0.7, 0.8], "volatility": 0.1, "noise_floor": 0.05}
        ...         for s, vals in (("ce", [0.5, 0.55]), ("wce:inverse", [0.6, 0.7])) for k, v in enumerate(vals)]
        >>> rep = write_report(runs, tempfile.mkdtemp(), command="augbal bench --recipe toy.yaml")
        >>> rep.recommendations["toy"][:40]
        'On toy, wce:inverse beats ce by 12.5 poi'
    """
    recs = [r if isinstance(r, RunRecord) else RunRecord.from_dict(r) for r in records]
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    versions = dict(versions or _installed_versions())
    splits = sorted({r.split for r in recs})
    table = aggregate(recs)
    failed = [r for r in recs if not r.ok]
    seeds = sorted({r.seed for r in recs})
    md: list[str] = [f"# {title}", ""]
    parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    recommendations: dict[str, str] = {}
    plot_paths: list[Path] = []
    for split in splits:
        sentence = recommend(recs, split, baseline=tuple(reversed(baselines)))
        recommendations[split] = sentence
        md += [f"## {split}", "", f"**Recommendation.** {sentence}", "", _md_table(_header(), _main_rows(recs, split, table)), ""]
        parts += [f"<h2>{html.escape(split)}</h2>", f"<p class='rec'><b>Recommendation.</b> {html.escape(sentence)}</p>",
                  _html_table(_header(), _main_rows(recs, split, table))]
        comp = _comparison_rows(recs, split, baselines)
        if comp:
            head = ["strategy", "baseline", "Δ bal. acc. (points)", "95% CI", "paired seeds", "CI excludes 0"]
            md += ["Paired differences in balanced accuracy (same seeds):", "", _md_table(head, comp), ""]
            parts += ["<h3>Paired differences in balanced accuracy (same seeds)</h3>", _html_table(head, comp)]
        n_classes = len(_class_names(recs, split))
        if n_classes >= 10:
            head = ["strategy", "many-shot", "medium-shot", "few-shot"]
            rows = _shot_rows(recs, split)
            md += ["Many/medium/few-shot recall (>100, 20-100, <20 training images):", "", _md_table(head, rows), ""]
            parts += ["<h3>Many / medium / few-shot recall</h3>", _html_table(head, rows)]
        for key, caption, draw in _PLOTS:
            png = draw(recs, split)
            name = f"{_slug(split)}-{key}.png"
            path = out / "plots" / name
            atomic_write_bytes(path, png, fsync=False)
            plot_paths.append(path)
            md += [f"![{caption}](plots/{name})", ""]
            data = base64.b64encode(png).decode("ascii")
            parts += [f"<h3>{html.escape(caption)}</h3>", f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"]
    if failed:
        head = ["strategy", "split", "seed", "error"]
        rows = [[r.strategy, r.split, str(r.seed), (r.error or "no scores")[:200]] for r in failed]
        md += ["## Failed runs", "", _md_table(head, rows), ""]
        parts += ["<h2>Failed runs</h2>", _html_table(head, rows)]
    about = [_SELECTION_RULE,
             f"Seeds: {', '.join(map(str, seeds))}. Runs: {len(recs)} ({len(failed)} failed).",
             "Volatility: standard deviation of the epoch-to-epoch changes of the unweighted validation loss; "
             "noise floor: the same spread expected from the finite validation set alone (bootstrap).",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", *notes]
    if command:
        about.append(f"Command: `{command}`")
    md += ["## About these numbers", "", *[f"- {line}" for line in about], ""]
    parts += ["<h2>About these numbers</h2>", "<ul class='meta'>"
              + "".join(f"<li>{_inline_code(html.escape(line))}</li>" for line in about) + "</ul>"]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    md_path = atomic_write_text(out / "report.md", "\n".join(md), fsync=False)
    html_path = atomic_write_text(out / "report.html", page, fsync=False)
    return Report(md_path, html_path, tuple(plot_paths), recommendations)


def _inline_code(text: str) -> str:
    pieces = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)
