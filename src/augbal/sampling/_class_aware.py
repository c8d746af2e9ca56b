"""ClassAwareSampler: exact per-epoch class quotas from the weighting family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from augbal._rounding import apportion
from augbal._validation import check_bool, check_choice, check_int, is_int

from ._base import SAMPLERS, ClassSampler
from ._weighting import Deferred, Explicit, Weighting, resolve_weighting

_ROUNDINGS = ("largest_remainder", "stochastic")


def _dataset_classes(labels: Any) -> list[str] | None:
    """The class names of a dataset or index that carries them (``.classes``, as torchvision's
    ``ImageFolder`` and augbal's ``ImageDataset`` do), so ``{name: weight}`` tables resolve.

    Example:
        >>> from types import SimpleNamespace
        >>> _dataset_classes(SimpleNamespace(classes=("cat", "dog"))), _dataset_classes([0, 1])
        (['cat', 'dog'], None)
    """
    names = getattr(labels, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def _named_classes(weighting: Weighting) -> int:
    """How many classes an explicit weighting names (a per-class list, or ``classes``), so
    classes past the largest label present (empty in this dataset) still count; else 0."""
    if isinstance(weighting, Explicit):
        sizes = [0 if weighting.classes is None else len(weighting.classes)]
        if isinstance(weighting.weights, (Sequence, np.ndarray)) and not isinstance(weighting.weights, (str, bytes)):
            sizes.append(len(weighting.weights))
        return max(sizes)
    if isinstance(weighting, Deferred):
        return max(_named_classes(resolve_weighting(w)) for w in (weighting.before, weighting.after))
    return 0


def _check_explicit_fits(labels: Any, weighting: Weighting) -> None:
    """Explicit weights (also inside ``Deferred``) checked against the labels' classes when a
    sampler is built, so a per-class list that is too short fails there, not at the first
    ``len()``. Only explicit weightings read the labels here; bad labels are left to ``_fit``."""
    parts = [weighting]
    explicit = []
    while parts:
        w = parts.pop()
        if isinstance(w, Explicit):
            explicit.append(w)
        elif isinstance(w, Deferred):
            parts.extend(resolve_weighting(x) for x in (w.before, w.after))
    if not explicit:
        return
    from augbal.data import targets_of

    y = targets_of(labels)
    if y.size == 0 or int(y.min()) < 0 or int(y.max()) >= max(1 << 20, 2 * y.size):
        return
    present = np.bincount(y)
    for w in explicit:
        full = np.zeros(max(present.size, _named_classes(w)), dtype=np.int64)
        full[: present.size] = present
        w.class_weights(full)


def _class_probs(sampler: ClassSampler, weighting: Weighting, epoch: int) -> np.ndarray:
    """Per present class draw probabilities; explicit weights are keyed by label value."""
    classes, counts = sampler.classes_, sampler.class_counts_
    if classes[-1] < max(1 << 20, 2 * counts.size):
        full = np.zeros(max(int(classes[-1]) + 1, _named_classes(weighting)), dtype=np.int64)
        full[classes] = counts
        return weighting.sampling_probs(full, epoch=epoch)[classes]
    return _on_dense(weighting, classes).sampling_probs(counts, epoch=epoch)


def _on_dense(weighting: Weighting, classes: np.ndarray) -> Weighting:
    """``weighting`` for counts indexed by dense class (labels too large to index by value):
    an explicit ``{label: weight}`` table rekeyed from label values to dense positions (also
    inside ``Deferred``), so its keys keep meaning labels.

    Example:
        >>> _on_dense(Explicit(weights={2_000_000: 4.0}), np.array([0, 2_000_000])).weights
        {1: 4.0}
    """
    if isinstance(weighting, Deferred):
        before, after = (_on_dense(resolve_weighting(w), classes) for w in (weighting.before, weighting.after))
        return Deferred(switch_epoch=weighting.switch_epoch, before=before, after=after)
    if not (isinstance(weighting, Explicit) and isinstance(weighting.weights, Mapping) and weighting.classes is None):
        return weighting
    dense = {int(v): i for i, v in enumerate(classes.tolist())}
    rekeyed = {}
    for key, value in weighting.weights.items():
        if not is_int(key) or int(key) not in dense:
            raise ValueError(f"weight key must be a class label of the data ({_first(classes)}); got {key!r}")
        rekeyed[dense[int(key)]] = value
    return Explicit(weights=rekeyed)


def _first(classes: np.ndarray, shown: int = 5) -> str:
    head = ", ".join(str(v) for v in classes[:shown].tolist())
    return head + (f", ... ({classes.size} labels)" if classes.size > shown else "")


@SAMPLERS.register("class_aware")
class ClassAwareSampler(ClassSampler):
    """Draw a class with exact per-epoch quotas, then an image of it: a drop-in sampler.

    Class ``c`` gets ``p_c * num_samples`` draws per epoch (``p_c ∝ n_c * w_c`` from the
    weighting family), rounded by largest remainder (ties drawn per epoch, seeded) or
    stochastically (seeded). Within a
    class, images are drawn without replacement until the class is exhausted, then
    reshuffled. Works for any dataset size: the only per-sample state is one int array.

    Args:
        labels: class label per sample: an integer array, tensor, list, or a dataset ``targets_of`` reads.
        weighting: anything ``resolve_weighting`` accepts ("balanced", "sqrt", 0.5,
            ``{"effective_number": 0.999}``, ``{label: weight}``, ``Progressive(...)``, ...).
        num_samples: epoch length over all replicas (default: the dataset size; with
            ``replacement=False``, the longest epoch in which no image repeats). Rounded
            up (down with ``drop_last`` or ``replacement=False``) to a multiple of
            ``num_replicas``; the quotas are those of one process, so every world size
            draws the same images but for the few that pad or cut.
        replacement: allow an image to be drawn again in an epoch once its class is exhausted.
        rounding: "largest_remainder" (exact, deterministic) or "stochastic" (unbiased, seeded).
        seed, num_replicas, rank, drop_last, yield_draws: see ``ClassSampler``.

    Example:
        >>> import numpy as np
        >>> labels = np.array([0] * 90 + [1] * 10)
        >>> sampler = ClassAwareSampler(labels, weighting="balanced", seed=0)
        >>> draws = list(sampler)
        >>> len(draws), int((labels[draws] == 1).sum())
        (100, 50)
        >>> sampler.report().max_repeats
        5
    """

    def __init__(
        self,
        labels: Any,
        *,
        weighting: Any = "balanced",
        num_samples: int | None = None,
        replacement: bool = True,
        rounding: str = "largest_remainder",
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        yield_draws: bool = False,
    ) -> None:
        super().__init__(
            labels, seed=seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last, yield_draws=yield_draws
        )
        check_int("num_samples", num_samples, low=1, allow_none=True)
        check_choice("rounding", rounding, _ROUNDINGS)
        self.weighting = resolve_weighting(weighting, classes=_dataset_classes(labels))
        _check_explicit_fits(labels, self.weighting)
        self.num_samples = num_samples
        self.replacement = check_bool("replacement", replacement)
        self.rounding = rounding

    def _target(self, epoch: int) -> np.ndarray:
        return _class_probs(self, self.weighting, epoch)

    def _pads(self) -> bool:
        return self.replacement  # without replacement, padding would repeat an image: cut instead

    def _quotas(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        p = _class_probs(self, self.weighting, epoch)
        n = self.class_counts_
        if self.replacement:
            total = self.num_samples or self.num_labels_
        else:
            positive = p > 0
            longest = int(np.floor(np.min(n[positive] / p[positive]) * (1 + 1e-12)))
            total = self.num_samples or longest
        q = apportion(p, total, rng if self.rounding == "stochastic" else None, ties=rng)
        if not self.replacement and np.any(q > n):
            c = int(np.argmax(q - n))
            raise ValueError(
                f"replacement=False needs every class quota <= its size; class {self.classes_[c]} "
                f"needs {q[c]} draws of {n[c]} images"
            )
        return q
