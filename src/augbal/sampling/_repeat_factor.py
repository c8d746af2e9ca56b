"""RepeatFactorSampler: LVIS / mmengine-style repeat factors for classification."""

from __future__ import annotations

from typing import Any

import numpy as np

from augbal._validation import check_real

from ._base import SAMPLERS, ClassSampler


@SAMPLERS.register("repeat_factor")
class RepeatFactorSampler(ClassSampler):
    """Repeat every image of class ``c`` ``r_c = max(1, sqrt(threshold / f_c))`` times per epoch.

    ``f_c = n_c / N`` is the class frequency. Fractional factors are rounded stochastically
    per image and per epoch (seeded): ``floor(r_c)`` copies of every image, plus one more for
    each image of a random ``Binomial(n_c, frac(r_c))``-sized subset, so the expected count
    is exact. The epoch length therefore varies a little between epochs (``len()`` gives the
    current one); it is rounded to a multiple of ``num_replicas`` as in ``ClassAwareSampler``
    (the per-image rounding never depends on ``num_replicas``).

    Args:
        labels: class label per sample (an integer array, tensor, list, or a dataset ``targets_of`` reads).
        threshold: frequency below which a class is repeated (default ``1 / num_classes``,
            the balanced frequency; LVIS uses 0.001 on image-level frequencies).
        seed, num_replicas, rank, drop_last, yield_draws: see ``ClassSampler``.

    Example:
        >>> import numpy as np
        >>> labels = np.array([0] * 90 + [1] * 10)
        >>> sampler = RepeatFactorSampler(labels, threshold=0.4, seed=0)
        >>> sampler.repeat_factors().round(2).tolist()
        [1.0, 2.0]
        >>> sampler.quotas()
        {0: 90, 1: 20}
    """

    def __init__(
        self,
        labels: Any,
        *,
        threshold: float | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        yield_draws: bool = False,
    ) -> None:
        super().__init__(
            labels, seed=seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last, yield_draws=yield_draws
        )
        check_real("threshold", threshold, low=0, high=1, low_open=True, allow_none=True)
        self.threshold = None if threshold is None else float(threshold)

    def repeat_factors(self) -> np.ndarray:
        """``r_c`` per present class (in ``classes_`` order)."""
        self._fit()
        freq = self.class_counts_ / self.num_labels_
        t = self.threshold if self.threshold is not None else 1.0 / self.classes_.size
        return np.maximum(1.0, np.sqrt(t / freq))

    def _target(self, epoch: int) -> np.ndarray:
        return self.class_counts_ * self.repeat_factors()

    def _quotas(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        r = self.repeat_factors()
        n = self.class_counts_
        whole = np.floor(r)
        return n * whole.astype(np.int64) + rng.binomial(n, r - whole)
