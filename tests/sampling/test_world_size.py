"""World-size invariance (``augbal.testing.check_world_size_invariance``): the images a sampler draws in an epoch do not depend on num_replicas.

Only their order and which rank gets them may. As with torch's ``DistributedSampler``,
equal shards need a few extra draws (``drop_last=False``: repeats of the head of a class's
draw stream) or a few fewer (``drop_last=True``: the tail dropped): fewer than
``num_replicas * unit`` items, and none at all when the epoch length is a multiple of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from augbal.sampling import SAMPLERS, BalancedBatchSampler, ClassAwareSampler
from augbal.testing import check_world_size_invariance


LABELS = np.random.default_rng(11).permutation(np.repeat(np.arange(5), [300, 60, 20, 7, 2]))  # 389: prime

# per sampler: its epoch-length option, lengths divisible by 1..4 (x * 12) and not, and fixed options
LENGTHS: dict[str, tuple[str | None, tuple[int | None, ...], dict[str, Any]]] = {
    "class_aware": ("num_samples", (None, 240, 241), {}),
    "balanced_batch": ("num_batches", (None, 12, 13), {"classes_per_batch": 2, "samples_per_class": 3}),
    "repeat_factor": (None, (None,), {"threshold": 0.3}),
    "resampled": (None, (None,), {}),
}
EXTRA = {  # further variants of the samplers with more options
    "class_aware": [{"replacement": False}, {"rounding": "stochastic", "num_samples": 101}, {"weighting": "sqrt"}],
    "resampled": [{"method": "under"}, {"sampling_strategy": "not majority"}],
    "balanced_batch": [{"classes_per_batch": 3, "samples_per_class": 2}, {"classes_per_batch": 2, "samples_per_class": 1, "num_batches": 2}],
    "repeat_factor": [{"threshold": 0.9}],
}


def _variants(name: str) -> list[dict[str, Any]]:
    option, lengths, fixed = LENGTHS.get(name, (None, (None,), {}))
    out = [{**fixed, **({option: n} if option and n else {})} for n in lengths]
    return out + EXTRA.get(name, [])


def test_every_registered_sampler_has_variants():
    assert set(SAMPLERS.names()) <= set(LENGTHS)  # a new sampler: add its epoch-length option here


@pytest.mark.parametrize("name", SAMPLERS.names())
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("yield_draws", [False, True])
def test_union_of_shards_is_the_single_process_epoch(name, drop_last, yield_draws):
    for kwargs in _variants(name):
        for seed, epoch in ((0, 0), (7, 3)):

            def factory(world: int, rank: int) -> Any:
                s = SAMPLERS.build(
                    name,
                    labels=LABELS,
                    seed=seed,
                    num_replicas=world,
                    rank=rank,
                    drop_last=drop_last,
                    yield_draws=yield_draws,
                    **kwargs,
                )
                s.set_epoch(epoch)
                return s

            check_world_size_invariance(factory, LABELS)


def _lt_labels() -> np.ndarray:
    counts = np.floor(100_000 * 100 ** (-np.arange(10) / 9)).astype(np.int64)  # 100,000 down to 1,000
    return np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))


def test_issue_case_three_shards_draw_exactly_the_single_process_images():
    labels = _lt_labels()

    def draws(world: int, rank: int, cls: type = ClassAwareSampler, **kw: Any) -> np.ndarray:
        s = cls(labels, seed=5, num_replicas=world, rank=rank, **kw)
        return np.sort(np.asarray(list(s), dtype=np.int64).ravel())

    single = draws(1, 0, weighting="balanced", num_samples=30_000)
    union = np.sort(np.concatenate([draws(3, r, weighting="balanced", num_samples=30_000) for r in range(3)]))
    assert single.size == union.size == 30_000
    assert int(np.count_nonzero(single != union)) == 0  # was 352 of 30,000

    kw = {"cls": BalancedBatchSampler, "classes_per_batch": 4, "samples_per_class": 5, "num_batches": 600}
    single = draws(1, 0, **kw)
    union = np.sort(np.concatenate([draws(3, r, **kw) for r in range(3)]))
    assert single.size == union.size == 12_000
    assert int(np.count_nonzero(single != union)) == 0


def test_the_check_catches_a_world_size_dependent_sampler():
    class Leaky(ClassAwareSampler):  # draws a different random subset per world size
        def _streams(self, epoch, q, rng):
            return super()._streams(epoch, q, np.random.default_rng([self.seed, epoch, self.num_replicas]))

    def factory(world: int, rank: int) -> Any:
        return Leaky(LABELS, num_samples=240, num_replicas=world, rank=rank)

    with pytest.raises(AssertionError, match=r"R=2: \d+ images added and \d+ removed"):
        check_world_size_invariance(factory, LABELS)
