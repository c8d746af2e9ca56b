"""Aggregate benchmark runs: mean ± std and bootstrap intervals per strategy and split,
paired differences against baselines on the same seeds, many/medium/few-shot accuracy,
and the recommendation sentence.

Works on plain run records (dicts read from run folders' JSON); no torch import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_int, check_probability, check_seed

__all__ = [
    "METRICS",
    "Cell",
    "Comparison",
    "RunRecord",
    "aggregate",
    "bootstrap_interval",
    "compare",
    "recommend",
    "shot_accuracy",
]

#: metric -> (label, higher is better); the columns of the main table, in order.
METRICS: dict[str, tuple[str, bool]] = {
    "balanced_accuracy": ("balanced accuracy", True),
    "macro_f1": ("macro-F1", True),
    "minority_recall": ("minority recall", True),
    "ece": ("ECE", False),
    "volatility": ("val-loss volatility", False),
    "volatility_ratio": ("volatility / noise floor", False),
    "wall_s": ("wall time (s)", False),
}


@dataclass(frozen=True)
class RunRecord:
    """One finished (or failed) run of a grid, as the aggregation needs it.

    ``scores`` holds the evaluated numbers of the run's selected checkpoint on the split the
    report is about (test, evaluated once after selection): ``balanced_accuracy``,
    ``macro_f1``, ``recall`` (per class), ``ece``, ``confusion``. ``volatility`` and
    ``noise_floor`` come from the validation loss of the run.

    Example:
        >>> r = RunRecord.from_dict({"strategy": "ce", "split": "s", "seed": 0, "train_counts": [90, 10],
        ...                          "scores": {"balanced_accuracy": 0.6, "recall": [0.9, 0.3]}})
        >>> r.value("minority_recall"), r.ok
        (0.3, True)
    """

    strategy: str
    split: str
    seed: int
    train_counts: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    scores: Mapping[str, Any] = field(default_factory=dict)
    volatility: float = math.nan
    noise_floor: float = math.nan
    wall_s: float = math.nan
    images_per_s: float = math.nan
    val_loss: tuple[float, ...] = ()
    selected: str = ""
    error: str | None = None
    run_dir: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Build a record from plain data (the JSON a run folder holds); unknown keys are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        missing = [k for k in ("strategy", "split", "seed") if k not in data]
        if missing:
            raise ValueError(f"a run record needs strategy, split and seed; missing {', '.join(missing)}")
        kw = {k: v for k, v in data.items() if k in known}
        for key in ("train_counts", "classes", "val_loss"):
            if key in kw and kw[key] is not None:
                kw[key] = tuple(kw[key])
        for key in ("volatility", "noise_floor", "wall_s", "images_per_s"):
            if kw.get(key) is None:
                kw.pop(key, None)
            else:
                kw[key] = float(kw[key])
        kw["seed"] = int(kw["seed"])
        kw["scores"] = dict(kw.get("scores") or {})
        return cls(**kw)

    @property
    def ok(self) -> bool:
        """True for a run that finished (no error) with scores."""
        return self.error is None and bool(self.scores)

    def value(self, metric: str) -> float:
        """The run's number for one of :data:`METRICS` (NaN where the run lacks it)."""
        if metric == "minority_recall":
            recall = self.scores.get("recall")
            if not recall or not self.train_counts:
                return math.nan
            value = recall[int(np.argmin(self.train_counts))]
            return math.nan if value is None else float(value)
        if metric == "volatility":
            return self.volatility
        if metric == "volatility_ratio":
            return self.volatility / self.noise_floor if self.noise_floor > 0 else math.nan
        if metric == "wall_s":
            return self.wall_s
        value = self.scores.get(metric)
        return math.nan if value is None else float(value)


def bootstrap_interval(
    values: Sequence[float], *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped).

    One value gives the degenerate interval (v, v); none gives (nan, nan).

    Example:
        >>> lo, hi = bootstrap_interval([0.60, 0.62, 0.64, 0.66, 0.68], seed=1)
        >>> 0.60 <= lo < 0.64 < hi <= 0.68
        True
    """
    check_probability("level", level)
    check_int("n_boot", n_boot, low=1)
    check_seed("seed", seed)
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Cell:
    """One metric of one strategy on one split, over its seeds."""

    mean: float
    std: float
    ci: tuple[float, float]
    n: int
    values: tuple[float, ...]

    def text(self, digits: int = 3) -> str:
        """``mean ± std`` (the mean alone for one seed; ``n/a`` without values)."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def _cell(values: Sequence[float], *, level: float, n_boot: int, seed: int) -> Cell:
    kept = tuple(float(v) for v in values if not math.isnan(v))
    if not kept:
        return Cell(math.nan, math.nan, (math.nan, math.nan), 0, ())
    x = np.asarray(kept)
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return Cell(float(x.mean()), std, bootstrap_interval(kept, level=level, n_boot=n_boot, seed=seed), x.size, kept)


def aggregate(
    records: Iterable[RunRecord], *, metrics: Sequence[str] = tuple(METRICS), level: float = 0.95,
    n_boot: int = 10_000, seed: int = 0,
) -> dict[tuple[str, str], dict[str, Cell]]:
    """Mean ± std (sample std, ddof=1) and a bootstrap interval of the mean, per (split, strategy).

    Failed runs are left out (the report lists them separately).

    Example:
        >>> rs = [RunRecord.from_dict({"strategy": "ce", "split": "s", "seed": k,
        ...                            "scores": {"balanced_accuracy": v}}) for k, v in enumerate([0.5, 0.7])]
        >>> cell = aggregate(rs, metrics=["balanced_accuracy"])[("s", "ce")]["balanced_accuracy"]
        >>> round(cell.mean, 3), round(cell.std, 3), cell.n
        (0.6, 0.141, 2)
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if record.ok:
            groups.setdefault((record.split, record.strategy), []).append(record)
    return {
        key: {m: _cell([r.value(m) for r in runs], level=level, n_boot=n_boot, seed=seed) for m in metrics}
        for key, runs in sorted(groups.items())
    }


@dataclass(frozen=True)
class Comparison:
    """A strategy against a baseline on the same split and seeds: mean paired difference and its interval."""

    strategy: str
    baseline: str
    split: str
    metric: str
    diff: float
    ci: tuple[float, float]
    seeds: tuple[int, ...]

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return bool(self.ci[0] > 0 or self.ci[1] < 0)


def compare(
    records: Iterable[RunRecord], *, baseline: str, metric: str = "balanced_accuracy", level: float = 0.95,
    n_boot: int = 10_000, seed: int = 0,
) -> list[Comparison]:
    """Paired differences ``strategy - baseline`` of ``metric`` on the seeds both ran, per split.

    Example:
        >>> rs = [RunRecord.from_dict({"strategy": s, "split": "x", "seed": k, "scores": {"balanced_accuracy": v}})
        ...       for s, vals in (("ce", [0.5, 0.6]), ("la", [0.7, 0.7])) for k, v in enumerate(vals)]
        >>> [(c.strategy, round(c.diff, 2), c.seeds) for c in compare(rs, baseline="ce")]
        [('la', 0.15, (0, 1))]
    """
    table: dict[tuple[str, str], dict[int, float]] = {}
    for r in records:
        if r.ok:
            table.setdefault((r.split, r.strategy), {})[r.seed] = r.value(metric)
    out = []
    for (split, strategy), by_seed in sorted(table.items()):
        base = table.get((split, baseline))
        if strategy == baseline or base is None:
            continue
        seeds = tuple(sorted(s for s in by_seed if s in base and not math.isnan(by_seed[s]) and not math.isnan(base[s])))
        if not seeds:
            continue
        diffs = [by_seed[s] - base[s] for s in seeds]
        out.append(Comparison(strategy, baseline, split, metric, float(np.mean(diffs)),
                              bootstrap_interval(diffs, level=level, n_boot=n_boot, seed=seed), seeds))
    return out


def shot_accuracy(
    recall: Sequence[float], train_counts: Sequence[int], *, many: int = 100, few: int = 20
) -> dict[str, float]:
    """Mean per-class recall over many-shot (> ``many`` training images), medium-shot and
    few-shot (< ``few``) classes, the long-tail literature's split (Liu et al., 2019).

    Groups without classes are NaN; a class whose recall is ``None`` (absent from the
    scored split) is left out of its group.

    Example:
        >>> {k: round(v, 3) for k, v in shot_accuracy([0.9, 0.8, 0.5, 0.2], [5000, 500, 50, 10]).items()}
        {'many': 0.85, 'medium': 0.5, 'few': 0.2}
    """
    if len(recall) != len(train_counts):
        raise ValueError(f"recall and train_counts must be equally long; got {len(recall)} and {len(train_counts)}")
    r = np.array([math.nan if v is None else v for v in recall], dtype=np.float64)
    n, scored = np.asarray(train_counts), ~np.isnan(r)
    groups = {"many": n > many, "medium": (n >= few) & (n <= many), "few": n < few}
    return {k: float(r[m & scored].mean()) if (m & scored).any() else math.nan for k, m in groups.items()}


def _calmer(records: Sequence[RunRecord], split: str, best: str, baseline: str) -> float:
    def mean_vol(strategy: str) -> float:
        vals = [r.volatility for r in records if r.ok and r.split == split and r.strategy == strategy]
        vals = [v for v in vals if not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    b, s = mean_vol(baseline), mean_vol(best)
    return b / s if s > 0 and not math.isnan(b) else math.nan


def recommend(
    records: Sequence[RunRecord], split: str, *, baseline: str | Sequence[str] = ("wce:inverse", "ce"),
    metric: str = "balanced_accuracy", level: float = 0.95, n_boot: int = 10_000, seed: int = 0,
) -> str:
    """The data-driven recommendation for one split, in one sentence with numbers.

    The best strategy is the one with the highest mean ``metric`` over its seeds (the scores of
    checkpoints selected on validation); it is set against the first of ``baseline`` (a name or
    names in order of preference) that is not itself and has runs on the split, on paired seeds.

    Example:
        >>> rs = [RunRecord.from_dict({"strategy": s, "split": "x", "seed": k, "volatility": vol,
        ...        "scores": {"balanced_accuracy": v}})
        ...       for s, vals, vol in (("wce:inverse", [0.5, 0.6], 0.2), ("la", [0.7, 0.72], 0.05))
        ...       for k, v in enumerate(vals)]
        >>> recommend(rs, "x", n_boot=200)  # doctest: +ELLIPSIS
        'On x, la beats wce:inverse by 16.0 points of balanced accuracy (95% CI [...]) over 2 seeds; its validation loss is 4.0x calmer.'
    """
    cells = aggregate([r for r in records if r.split == split], metrics=[metric], level=level, n_boot=n_boot, seed=seed)
    if not cells:
        return f"On {split}, no run finished: nothing to recommend."
    higher = METRICS.get(metric, (metric, True))[1]
    ranked = sorted(cells.items(), key=lambda kv: kv[1][metric].mean, reverse=higher)
    best = ranked[0][0][1]
    label = METRICS.get(metric, (metric, True))[0]
    preferred = [baseline] if isinstance(baseline, str) else list(baseline)
    present = {strategy for (_, strategy) in cells}
    baseline = next((b for b in preferred if b != best and b in present), preferred[0] if preferred else best)
    if best == baseline:
        runner = ranked[1][0][1] if len(ranked) > 1 else None
        tail = "" if runner is None else f"; the runner-up, {runner}, does not beat it"
        return f"On {split}, {baseline} is the best of the strategies tried ({label} {cells[(split, best)][metric].mean:.3f}){tail}."
    comps = [c for c in compare(records, baseline=baseline, metric=metric, level=level, n_boot=n_boot, seed=seed)
             if c.split == split and c.strategy == best]
    if not comps:
        return (f"On {split}, {best} has the highest {label} ({cells[(split, best)][metric].mean:.3f}); "
                f"no paired runs of {baseline} to compare it with.")
    c = comps[0]
    scale, unit = (100.0, " points") if metric in ("balanced_accuracy", "macro_f1", "minority_recall", "accuracy") else (1.0, "")
    verb = "beats" if (c.diff > 0) == higher else "trails"
    lo, hi = sorted((c.ci[0] * scale, c.ci[1] * scale))
    sentence = (f"On {split}, {best} {verb} {baseline} by {abs(c.diff) * scale:.1f}{unit} of {label} "
                f"({level:.0%} CI [{lo:.1f}, {hi:.1f}]) over {len(c.seeds)} seed{'s' * (len(c.seeds) != 1)}")
    calm = _calmer(records, split, best, baseline)
    if not math.isnan(calm):
        word = "calmer" if calm >= 1 else "more volatile"
        factor = calm if calm >= 1 else 1 / calm
        sentence += f"; its validation loss is {factor:.1f}x {word}"
    return sentence + "."
