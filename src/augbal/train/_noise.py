""""Should I worry?": the validation-loss volatility set against its noise floor.

- :func:`volatility` — DESIGN.md's measure: the standard deviation of the epoch-to-epoch
  differences of a validation-loss curve (sample std, ``ddof=1``: a 20-epoch run gives 19
  differences and the unbiased variance estimate of their spread; with fewer than 3
  values the spread of the differences is undefined and the result is ``nan``).
- :func:`noise_floor` — the spread the same loss would show from the finite validation
  set alone: the validation samples are bootstrapped at one fixed checkpoint (by default
  stratified by class, so every draw keeps the validation set's class counts: the
  sampling noise of a set of 450/90/18 images). Its ``std`` is the standard deviation of
  the bootstrap losses; ``floor = sqrt(2) * std`` is the standard deviation of the
  *difference* of two independent draws, the number comparable with a volatility (a
  volatility is a spread of differences). ``per_class_share`` splits the variance by
  class: the loss is a weighted mean of per-class means, ``L = Σ_c a_c m_c`` with
  ``a_c = n_c w_c / Σ_k n_k w_k``, so ``var L = Σ_c a_c² σ_c² / n_c`` (σ_c² the spread of
  class c's per-sample losses); the shares are the terms of that sum over their total.
- :func:`worry_verdict` — one sentence with the numbers: does the fluctuation exceed the
  sampling noise, where does the noise come from, and which lever (another run) moved it.

Compute the floor with the same loss variant as the volatility: ``weights=None`` for the
unweighted loss (the curve DESIGN.md's volatility is measured on), ``weights = 1 /
train_counts`` for ``loss_weighted``, ``weights = 1 / validation counts`` for
``loss_uniform_prior`` (see :func:`augbal.train.evaluate_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._validation import check_bool, check_int, check_real, check_seed, is_real
from ._metrics import _check_classes, _check_labels, _check_scores, _per_sample_ce, _to_numpy

__all__ = ["NoiseFloor", "Verdict", "noise_floor", "volatility", "worry_verdict"]

#: a volatility above this multiple of the noise floor is reported as "worry" (see worry_verdict)
WORRY_RATIO = 1.5

_CHUNK = 1 << 22  # bootstrap indices drawn at a time (32 MiB of int64)


# --------------------------------------------------------------------------- volatility


def volatility(values: Any) -> float:
    """The standard deviation (``ddof=1``) of the epoch-to-epoch differences of ``values``.

    Returns ``nan`` for fewer than 3 values (fewer than 2 differences), and ``nan`` when a
    value is ``nan`` or ``None`` (a diverged or missing epoch).

    Example:
        >>> volatility([1.0, 2.0, 4.0, 7.0])  # differences 1, 2, 3
        1.0
        >>> volatility([0.9, 0.8])
        nan

    Raises:
        ValueError: unless ``values`` is a 1-d sequence of real numbers.
    """
    items = _to_numpy(values).tolist() if hasattr(values, "shape") else values
    if (
        isinstance(items, (str, bytes, Mapping))
        or not isinstance(items, Sequence)
        or not all(v is None or is_real(v) for v in items)
    ):
        raise ValueError(f"values must be a 1-d sequence of numbers (one loss per epoch); got {values!r}")
    arr = np.array([math.nan if v is None else float(v) for v in items], dtype=np.float64)
    if arr.size < 3:
        return math.nan
    return float(np.std(np.diff(arr), ddof=1))


# --------------------------------------------------------------------------- noise floor


@dataclass(frozen=True)
class NoiseFloor:
    """The sampling noise of a validation loss at one checkpoint (see :func:`noise_floor`).

    Attributes:
        loss: the loss on the validation set itself.
        std: standard deviation of the bootstrap losses.
        floor: ``sqrt(2) * std``, comparable with a :func:`volatility`.
        analytic_std: ``sqrt(Σ_c a_c² σ_c² / n_c)``, the stratified bootstrap's expected std.
        per_class_share: ``{class name: share of the variance}`` (sums to 1).
        n: validation samples per class (in class order).
        classes: the class names.
        n_boot, seed, stratified, weighted: how it was computed.
    """

    loss: float
    std: float
    floor: float
    analytic_std: float
    per_class_share: dict[str, float]
    n: tuple[int, ...]
    classes: tuple[str, ...]
    n_boot: int
    seed: int
    stratified: bool
    weighted: bool

    @property
    def total(self) -> int:
        """The number of validation samples."""
        return int(sum(self.n))

    def dominant(self) -> tuple[str, float, int]:
        """``(class, share, validation count)`` of the class with the largest share."""
        name = max(self.classes, key=lambda c: self.per_class_share.get(c, 0.0))
        return name, self.per_class_share.get(name, 0.0), self.n[self.classes.index(name)]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); :meth:`from_dict` reads it back."""
        return {
            "loss": self.loss,
            "std": self.std,
            "floor": self.floor,
            "analytic_std": self.analytic_std,
            "per_class_share": dict(self.per_class_share),
            "n": list(self.n),
            "classes": list(self.classes),
            "n_boot": self.n_boot,
            "seed": self.seed,
            "stratified": self.stratified,
            "weighted": self.weighted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseFloor:
        """The :class:`NoiseFloor` a :meth:`to_dict` describes."""
        try:
            return cls(
                loss=float(data["loss"]),
                std=float(data["std"]),
                floor=float(data["floor"]),
                analytic_std=float(data["analytic_std"]),
                per_class_share={str(k): float(v) for k, v in data["per_class_share"].items()},
                n=tuple(int(v) for v in data["n"]),
                classes=tuple(str(c) for c in data["classes"]),
                n_boot=int(data["n_boot"]),
                seed=int(data["seed"]),
                stratified=bool(data["stratified"]),
                weighted=bool(data["weighted"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"a noise floor is the dict NoiseFloor.to_dict() writes; got {data!r} ({exc})") from exc


def _check_weights(weights: Any, num_classes: int) -> np.ndarray:
    arr = _to_numpy(weights)
    ok = arr.ndim == 1 and arr.shape[0] == num_classes and arr.dtype != bool and np.issubdtype(arr.dtype, np.number)
    if ok:
        arr = arr.astype(np.float64)
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr >= 0))
    if not ok:
        raise ValueError(
            f"weights must be {num_classes} finite non-negative per-class weights, or None; got {weights!r}"
        )
    return arr


def noise_floor(
    logits: Any,
    labels: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    weights: Any = None,
    stratified: bool = True,
    classes: Sequence[Any] | None = None,
) -> NoiseFloor:
    """The spread of the validation loss due to the finite validation set alone.

    The per-sample cross-entropies of one checkpoint are bootstrapped ``n_boot`` times
    (within each class when ``stratified``, else over all samples) with a
    ``numpy.random.default_rng(seed)`` generator; each draw's loss is the
    ``weights``-weighted mean (torch's weighted-CE normalisation), the plain mean for
    ``weights=None``. See the module docstring for ``floor`` and ``per_class_share``
    (the shares decompose the stratified variance, also when ``stratified=False``).

    Args:
        logits: ``(N, C)`` validation logits of the checkpoint.
        labels: ``(N,)`` validation labels.
        n_boot: bootstrap draws (>= 2).
        seed: the generator's seed.
        weights: per-class weights (length C) of the loss variant, or None (unweighted).
        stratified: keep each class's validation count in every draw.
        classes: class names (the keys of ``per_class_share``); default ``"0", "1", ...``.

    Example:
        >>> nf = noise_floor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], [0, 1, 1, 1],
        ...                  n_boot=200, classes=["deer", "cat"])
        >>> round(nf.floor / nf.std, 6), sorted(nf.per_class_share), nf.n
        (1.414214, ['cat', 'deer'], (1, 3))

    Raises:
        ValueError: for bad logits/labels/weights, ``n_boot`` < 2, a bad seed, or weights
            that give every validation sample weight 0.
    """
    z = _check_scores("logits", logits)
    num_classes = z.shape[1]
    y = _check_labels(labels, z.shape[0], num_classes)
    n_boot = check_int("n_boot", n_boot, low=2)  # type: ignore[assignment]
    seed = check_seed("seed", seed)
    stratified = check_bool("stratified", stratified)
    names = _check_classes(classes, num_classes)
    w = np.ones(num_classes) if weights is None else _check_weights(weights, num_classes)
    n = np.bincount(y, minlength=num_classes)
    if not np.any(n * w > 0):
        raise ValueError(
            f"weights must give some validation sample a weight > 0; got {w.tolist()} for counts {n.tolist()}"
        )
    return _noise_floor(_per_sample_ce(z, y), y, n, w, n_boot, seed, stratified, names, weights is not None)


def _noise_floor(
    losses: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    w: np.ndarray,
    n_boot: int,
    seed: int,
    stratified: bool,
    names: list[str],
    weighted: bool,
) -> NoiseFloor:
    rng = np.random.default_rng(seed)
    a = n * w / float((n * w).sum())  # the weight of each class's mean in the loss
    used = [c for c in range(len(n)) if a[c] > 0]
    by_class = {c: losses[y == c] for c in used}
    if stratified:
        boot = np.zeros(n_boot)
        for c in used:
            boot += a[c] * _bootstrap_means(by_class[c], n_boot, rng)
    else:
        sample_w = w[y]
        boot = _bootstrap_ratio(sample_w * losses, sample_w, n_boot, rng)
    terms = np.zeros(len(n))
    for c in used:
        terms[c] = a[c] ** 2 * float(np.var(by_class[c])) / n[c]
    total = float(terms.sum())
    shares = terms / total if total > 0 else terms
    std = float(np.std(boot, ddof=1))
    return NoiseFloor(
        loss=float(sum(a[c] * by_class[c].mean() for c in used)),
        std=std,
        floor=math.sqrt(2.0) * std,
        analytic_std=math.sqrt(total),
        per_class_share={names[c]: float(shares[c]) for c in range(len(n))},
        n=tuple(int(v) for v in n),
        classes=tuple(names),
        n_boot=n_boot,
        seed=seed,
        stratified=stratified,
        weighted=weighted,
    )


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, same size) of ``values``."""
    size = values.shape[0]
    out = np.empty(n_boot)
    step = max(1, _CHUNK // size)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        out[start:stop] = values[rng.integers(0, size, size=(stop - start, size))].mean(axis=1)
    return out


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``Σ num / Σ den`` over ``n_boot`` resamples of the sample indices (a weighted mean).

    A resample whose samples all weigh 0 has no loss: it is left out (possible only
    when some classes weigh 0 and the set is tiny).
    """
    size = num.shape[0]
    out = np.empty(n_boot)
    step = max(1, _CHUNK // size)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, size, size=(stop - start, size))
        d = den[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = num[idx].sum(axis=1) / d
    return out[np.isfinite(out)]


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Verdict:
    """The answer to "should I worry?" (see :func:`worry_verdict`).

    Attributes:
        ratio: volatility / noise floor (``nan`` when the volatility is undefined).
        exceeds: True when ``ratio > threshold``: the fluctuation is the training's.
        sentence: one sentence with the numbers.
        volatility, floor, threshold: the inputs.
        late_ratio: the volatility of the last ``late_epochs`` values over the floor, when
            the curve was given (``values=``) and long enough (else ``nan`` and 0).
    """

    ratio: float
    exceeds: bool
    sentence: str
    volatility: float
    floor: float
    threshold: float
    late_ratio: float = math.nan
    late_epochs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``nan`` kept as a float)."""
        return {
            "ratio": self.ratio,
            "exceeds": self.exceeds,
            "sentence": self.sentence,
            "volatility": self.volatility,
            "floor": self.floor,
            "threshold": self.threshold,
            "late_ratio": self.late_ratio,
            "late_epochs": self.late_epochs,
        }


def _num(x: float) -> str:
    """Two significant digits for a loss-sized number (0.14, 0.082, 1.3, 12)."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def _lever_clause(vol: float, levers: Mapping[str, float]) -> str:
    """'; of the levers tried, halving the LR on plateau cut it 2.3x (to 0.06), ...'."""
    parts = []
    order = sorted(levers.items(), key=lambda kv: -abs(math.log(max(kv[1], 1e-300) / vol)))
    for name, other in order:
        factor = vol / other if other > 0 else math.inf
        if math.isinf(factor):
            parts.append(f"{name} cut it to 0")
        elif 1 / 1.05 <= factor <= 1.05:
            parts.append(f"{name} left it unchanged ({_num(other)})")
        elif factor > 1:
            parts.append(f"{name} cut it {factor:.1f}x (to {_num(other)})")
        else:
            parts.append(f"{name} raised it {1 / factor:.1f}x (to {_num(other)})")
    return "; of the levers tried, " + ", ".join(parts) if parts else ""


def worry_verdict(
    volatility: float,
    floor: NoiseFloor | float,
    *,
    levers: Mapping[str, float] | None = None,
    threshold: float = WORRY_RATIO,
    n: int | None = None,
    classes: Sequence[Any] | None = None,
    values: Any = None,
) -> Verdict:
    """Set a run's validation-loss volatility against its noise floor, in one sentence.

    ``exceeds`` when ``volatility / floor > threshold`` (default 1.5). Why 1.5 and not 1:
    a volatility from E epochs is the spread of E−1 differences, so it is itself noisy
    (relative standard error about ``1/sqrt(2(E−2))``, 0.17 for 20 epochs), and so is a
    floor estimated from one validation set. Simulated curves that are *only* sampling
    noise (a fixed model scored on a fresh 450/90/18 draw each epoch, 300 runs) give a
    median ratio of 1.0 and exceed 1.5 in 2% of 20-epoch runs (8% of 10-epoch runs) for
    the unweighted loss; for the inverse-frequency weighted loss, whose floor rests on
    the 18 cat images, they exceed it in 20-28% (median 1.1): read a "worry" on a
    weighted loss with that in mind, or measure the unweighted loss as DESIGN.md does.

    Args:
        volatility: :func:`volatility` of the validation-loss curve (``nan``: too few epochs).
        floor: the :class:`NoiseFloor` of the same loss variant (its ``floor``, the
            validation size and the dominant class go into the sentence), or the floor
            as a number.
        levers: ``{what changed: that run's volatility}`` for other runs on the same
            validation set (``{"halving the LR on plateau": 0.06}``); the sentence says how
            much each moved the volatility, the largest move first.
        threshold: the ratio above which the verdict is "worry" (> 0).
        n: the number of validation images, for the sentence when ``floor`` is a number
            (with a :class:`NoiseFloor` it must equal the floor's own count).
        classes: class names for a :class:`NoiseFloor` computed without them (its
            classes are then ``"0", "1", ...``).
        values: the loss curve itself (one value per epoch). A volatility counts every
            change, the early descent of a converging run too; with the curve (6 epochs
            or more) the verdict also measures the last half of the run (at least 3
            epochs), and a run whose excess is only early (late ratio within the
            threshold) is told so instead of "worry". ``exceeds`` stays the whole-run test.

    Example:
        >>> v = worry_verdict(0.14, 0.08)
        >>> v.exceeds, round(v.ratio, 2)
        (True, 1.75)
        >>> v.sentence.split(": ")[0]
        'Validation loss fluctuates 1.8x more than its sampling noise (volatility 0.14 vs noise floor 0.08)'
        >>> worry_verdict(0.07, 0.08).exceeds
        False

    Raises:
        ValueError: for a negative or non-numeric volatility or floor, a bad threshold or lever.
    """
    nf = floor if isinstance(floor, NoiseFloor) else None
    f = check_real("floor", nf.floor if nf is not None else floor, low=0)
    if not is_real(volatility) or math.isinf(float(volatility)) or float(volatility) < 0:  # nan passes
        raise ValueError(f"volatility must be a number >= 0 or nan (too few epochs); got {volatility!r}")
    v = float(volatility)
    threshold = check_real("threshold", threshold, low=0, low_open=True)  # type: ignore[assignment]
    levers = dict(levers or {})
    if not all(isinstance(k, str) and is_real(x) and math.isfinite(float(x)) and x >= 0 for k, x in levers.items()):
        raise ValueError(f"levers must map a lever (a string) to its run's volatility (a number >= 0); got {levers!r}")
    levers = {k: float(x) for k, x in levers.items()}
    if n is not None:
        n = check_int("n", n, low=1)  # type: ignore[assignment]
        if nf is not None and n != nf.total:
            raise ValueError(f"n must equal the noise floor's number of validation samples ({nf.total}); got {n}")
    if classes is not None and nf is not None:
        names = [str(c) for c in classes] if not isinstance(classes, (str, bytes)) else []
        if len(names) != len(nf.classes):
            raise ValueError(
                f"classes must be {len(nf.classes)} class names (the noise floor's classes); got {classes!r}"
            )
        nf = replace(
            nf,
            classes=tuple(names),
            per_class_share={new: nf.per_class_share.get(old, 0.0) for old, new in zip(nf.classes, names)},
        )
    late = _late(values)
    return _verdict(v, f, nf, n, levers, threshold, late)


def _late(values: Any) -> tuple[float, int]:
    """``(volatility of the last half of the curve, its length)``; ``(nan, 0)`` under 6 values."""
    if values is None:
        return math.nan, 0
    curve = _to_numpy(values).tolist() if hasattr(values, "shape") else values
    if isinstance(curve, (str, bytes, Mapping)) or not isinstance(curve, Sequence):
        raise ValueError(f"values must be a 1-d sequence of numbers (one loss per epoch); got {values!r}")
    if len(curve) < 6:
        volatility(curve)  # validates
        return math.nan, 0
    k = max(3, len(curve) // 2)
    return volatility(curve[-k:]), k


def _verdict(
    v: float,
    f: float,
    nf: NoiseFloor | None,
    n: int | None,
    levers: dict[str, float],
    threshold: float,
    late: tuple[float, int],
) -> Verdict:
    context = f", from {n} validation images" if n is not None else ""
    if nf is not None:
        name, share, count = nf.dominant()
        context = (
            f", from {nf.total} validation images, {round(100 * share)}% of it from class {name} with {count} images"
        )
    if math.isnan(v):
        sentence = (
            "Cannot tell yet whether validation loss fluctuates more than its sampling noise: its volatility "
            f"needs at least 3 epochs (noise floor {_num(f)}{context})."
        )
        return Verdict(math.nan, False, sentence, v, f, threshold)
    ratio = _ratio(v, f)
    late_v, late_k = late
    late_ratio = _ratio(late_v, f) if late_k else math.nan
    numbers = f"volatility {_num(v)} vs noise floor {_num(f)}"
    lever = _lever_clause(v, levers) if levers and v > 0 else ""
    exceeds = ratio > threshold
    if exceeds and late_ratio <= threshold:  # False for nan
        sentence = (
            f"Validation loss fluctuates {ratio:.1f}x more than its sampling noise ({numbers}{context}), but only "
            f"{late_ratio:.1f}x over the last {late_k} epochs (volatility {_num(late_v)}): the excess is the early "
            f"descent, not instability; no need to worry; pick the checkpoint on a smoothed metric{lever}."
        )
    elif exceeds:
        still = f" (still {late_ratio:.1f}x over the last {late_k} epochs)" if late_k else ""
        sentence = (
            f"Validation loss fluctuates {ratio:.1f}x more than its sampling noise ({numbers}{context}): "
            f"worry — it is the training, not the finite validation set{still}{lever}."
        )
    elif ratio <= 1:
        sentence = (
            f"Validation loss fluctuates within its sampling noise ({numbers}, ratio {ratio:.1f}x{context}): "
            f"no need to worry; pick the checkpoint on a smoothed metric{lever}."
        )
    else:
        sentence = (
            f"Validation loss fluctuates {ratio:.1f}x its sampling noise, inside the {threshold:g}x margin a run "
            f"this short cannot tell from noise ({numbers}{context}): no need to worry; pick the checkpoint "
            f"on a smoothed metric{lever}."
        )
    return Verdict(ratio, exceeds, sentence, v, f, threshold, late_ratio, late_k)


def _ratio(v: float, f: float) -> float:
    if math.isnan(v):
        return math.nan
    return v / f if f > 0 else (math.inf if v > 0 else 1.0)
