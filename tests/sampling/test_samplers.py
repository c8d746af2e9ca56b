"""Behaviour of each sampler: quotas, no-repeat-before-exhaustion, schedules, reports, errors."""

from __future__ import annotations

import collections
import itertools

import threading
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from augbal._draw import Draw
from augbal.sampling import (
    BalancedBatchSampler,
    ClassAwareSampler,
    Deferred,
    Explicit,
    Progressive,
    RepeatFactorSampler,
    ResampledSampler,
    check_sampling_strategy,
    resample_indices,
)
from augbal._rounding import apportion

SKEW = np.array([0] * 90 + [1] * 10)


def classes_in_order(sampler, labels):
    return labels[np.array(list(sampler))]


# ---------------------------------------------------------------- ClassAwareSampler
def test_balanced_quotas_are_exact_every_epoch():
    s = ClassAwareSampler(SKEW, weighting="balanced", seed=0)
    for epoch in range(5):
        s.set_epoch(epoch)
        assert np.bincount(classes_in_order(s, SKEW)).tolist() == [50, 50]


def test_largest_remainder_rounding_and_fixed_epoch_length():
    labels = np.repeat([0, 1, 2], [10, 10, 10])
    s = ClassAwareSampler(labels, weighting="balanced", num_samples=31)
    assert len(s) == 31
    assert s.quotas() == {0: 11, 1: 10, 2: 10}  # 31/3 each; the one extra goes to the first tie
    assert apportion(np.array([0.5, 0.3, 0.2]), 7).tolist() == [4, 2, 1]
    assert apportion(np.array([0.55, 0.45]), 1).tolist() == [1, 0]


def test_stochastic_rounding_is_unbiased_and_exact_in_total():
    labels = np.repeat([0, 1, 2], [10, 10, 10])
    s = ClassAwareSampler(labels, num_samples=10, rounding="stochastic", seed=1)
    quotas = []
    for epoch in range(600):
        s.set_epoch(epoch)
        q = list(s.quotas().values())
        assert sum(q) == 10 and set(q) <= {3, 4}
        quotas.append(q)
    assert np.allclose(np.mean(quotas, axis=0), 10 / 3, atol=0.08)
    assert len({tuple(q) for q in quotas}) == 3  # every class sometimes gets the extra draw


def test_minority_images_all_seen_before_any_repeat():
    s = ClassAwareSampler(SKEW, seed=4, yield_draws=True)
    minority = [d for d in s if SKEW[d.index] == 1]
    assert len(minority) == 50
    for cycle in range(5):  # draws 10k..10k+9 are the 10 minority images, each once
        block = minority[cycle * 10 : cycle * 10 + 10]
        assert sorted(d.index for d in block) == list(range(90, 100))
        assert {d.repeat for d in block} == {cycle}
    majority = [d.index for d in s if SKEW[d.index] == 0]
    assert len(set(majority)) == 50  # 50 of 90 majority images, none twice


def test_without_replacement_defaults_to_the_longest_epoch_without_repeats():
    s = ClassAwareSampler(SKEW, replacement=False, seed=0)
    out = list(s)
    assert len(out) == 20 and len(set(out)) == 20
    assert np.bincount(SKEW[out]).tolist() == [10, 10]
    too_long = ClassAwareSampler(SKEW, replacement=False, num_samples=40)
    with pytest.raises(ValueError, match="replacement=False needs every class quota <= its size; class 1 needs 20"):
        list(too_long)


def test_instance_weighting_keeps_the_data_frequencies():
    s = ClassAwareSampler(SKEW, weighting="instance", seed=0, replacement=False)
    assert sorted(s) == list(range(100))  # a plain shuffled epoch


def test_explicit_weights_are_keyed_by_label_value():
    labels = np.array([0] * 30 + [5] * 30)
    s = ClassAwareSampler(labels, weighting={0: 1.0, 5: 2.0}, num_samples=90)
    assert s.quotas() == {0: 30, 5: 60}
    assert set(np.unique(labels[list(s)]).tolist()) == {0, 5}


def test_explicit_weights_may_name_classes_absent_from_the_labels():
    # 4 classes, the last one empty in this split: a per-class list or class names cover it
    labels = np.repeat([0, 1, 2], [30, 30, 30])
    names = ["cat", "deer", "dog", "zebra"]
    for weighting in (
        [1.0, 1.0, 2.0, 1.0],
        Explicit(weights={"dog": 2.0}, classes=names),
        Deferred(switch_epoch=0, after=[1.0, 1.0, 2.0, 5.0]),
    ):
        s = ClassAwareSampler(labels, weighting=weighting, num_samples=80)
        assert s.quotas() == {0: 20, 1: 20, 2: 40}
        assert sorted(set(labels[list(s)].tolist())) == [0, 1, 2]
    b = BalancedBatchSampler(labels, classes_per_batch=2, samples_per_class=2, weighting=[1.0, 1.0, 1.0, 1.0])
    assert b.quotas() == {0: 30, 1: 30, 2: 28}
    with pytest.raises(ValueError, match="explicit weights must give one weight per class \\(3\\); got 2"):
        ClassAwareSampler(labels, weighting=[1.0, 1.0])  # at construction (issue 8), not at quotas()


def test_progressive_and_deferred_schedules_change_quotas_not_length():
    prog = ClassAwareSampler(SKEW, weighting=Progressive(start="instance", end="balanced", epochs=4))
    seen = []
    for epoch in range(5):
        prog.set_epoch(epoch)
        assert len(prog) == 100
        seen.append(prog.quotas()[1])
    assert seen[0] == 10 and seen[-1] == 50 and seen == sorted(seen)
    deferred = ClassAwareSampler(SKEW, weighting=Deferred(switch_epoch=2, before="instance", after="balanced"))
    minority = []
    for epoch in range(4):
        deferred.set_epoch(epoch)
        minority.append(deferred.quotas()[1])
    assert minority == [10, 10, 50, 50]


def test_report_counts_unique_and_repeats():
    r = ClassAwareSampler(SKEW, seed=0).report()
    assert r.class_counts == {0: 50, 1: 50} == r.target_counts
    assert (r.num_samples, r.unique, r.max_repeats) == (100, 60, 5)
    assert r.unique_fraction == pytest.approx(0.6) and r.coverage == pytest.approx(0.6)


def test_labels_from_datasets_and_sparse_label_values():
    data = TensorDataset(torch.zeros(100, 1), torch.as_tensor(SKEW))
    data.targets = torch.as_tensor(SKEW)
    sub = Subset(data, list(range(80, 100)))  # 10 majority, 10 minority
    s = ClassAwareSampler(sub, num_samples=20)
    assert len(s) == 20
    assert s.class_counts_.tolist() == [10, 10]
    huge = ClassAwareSampler(np.array([0, 10**12, 10**12]), num_samples=4)
    assert huge.quotas() == {0: 2, 10**12: 2} and huge.classes_.tolist() == [0, 10**12]
    assert sorted(huge) == [0, 0, 1, 2]


def test_drop_in_dataloader_sampler():
    data = TensorDataset(torch.as_tensor(SKEW))
    sampler = ClassAwareSampler(SKEW, seed=2)
    loader = DataLoader(data, batch_size=10, sampler=sampler)
    got = torch.cat([b[0] for b in loader]).numpy()
    assert np.array_equal(got, SKEW[list(sampler)])
    assert np.bincount(got).tolist() == [50, 50]


def test_distributed_rank_and_epoch_length_rounding():
    shards = [ClassAwareSampler(SKEW, num_samples=101, num_replicas=3, rank=r) for r in range(3)]
    assert [len(s) for s in shards] == [34, 34, 34]  # padded up to equal length
    dropped = ClassAwareSampler(SKEW, num_samples=101, num_replicas=3, rank=0, drop_last=True)
    assert len(dropped) == 33
    no_repeat = [ClassAwareSampler(SKEW, replacement=False, num_replicas=3, rank=r, seed=8) for r in range(3)]
    outs = [list(s) for s in no_repeat]
    assert [len(o) for o in outs] == [6, 6, 6]  # 20 rounded down: padding would repeat an image
    assert len(set().union(*map(set, outs))) == 18


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed must be an int >= 0; got -1"),
        ({"num_replicas": 2, "rank": 2}, r"rank must be in \[0, num_replicas=2\); got 2"),
        ({"rounding": "nearest"}, "rounding must be one of"),
        ({"num_samples": 0}, "num_samples must be an int >= 1 or None; got 0"),
        ({"weighting": "heavy"}, "got 'heavy'"),
    ],
)
def test_bad_arguments_state_the_rule(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassAwareSampler(SKEW, **kwargs)


def test_bad_labels_and_state():
    with pytest.raises(ValueError, match="labels must be non-negative class indices; got -1"):
        len(ClassAwareSampler(np.array([0, -1])))
    with pytest.raises(ValueError, match="at least one sample"):
        len(ClassAwareSampler(np.array([], dtype=np.int64)))
    s = ClassAwareSampler(SKEW, seed=1)
    with pytest.raises(ValueError, match="state was saved with seed=2"):
        s.load_state_dict({"epoch": 0, "yielded": 0, "seed": 2})
    shard = ClassAwareSampler(SKEW, seed=1, num_replicas=2, rank=0)
    assert shard.state_dict()["num_replicas"] == 2
    with pytest.raises(ValueError, match="state was saved with num_replicas=2; this sampler has num_replicas=1"):
        s.load_state_dict(shard.state_dict())
    with pytest.raises(ValueError, match="epoch must be an int >= 0; got -3"):
        s.set_epoch(-3)


# ---------------------------------------------------------------- BalancedBatchSampler
def test_balanced_batches_hold_m_of_k_distinct_classes():
    labels = np.repeat(np.arange(5), [200, 50, 20, 8, 2])
    s = BalancedBatchSampler(labels, classes_per_batch=3, samples_per_class=4, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 280 // 12  # default: len(labels) // (k * m) batches
    slots = np.zeros(5, dtype=np.int64)
    for b in batches:
        per_class = np.bincount(labels[b], minlength=5)
        assert sorted(per_class[per_class > 0].tolist()) == [4, 4, 4]
        slots += per_class > 0
    assert slots.max() - slots.min() <= 1  # balanced over classes: 72 slots over 5 classes
    drawn = np.bincount(list(itertools.chain.from_iterable(batches)), minlength=280)
    assert drawn[278:].sum() == 4 * slots[4] and abs(drawn[278] - drawn[279]) <= 1  # 2-image class: cycles


def test_balanced_batches_as_dataloader_batch_sampler():
    labels = np.repeat(np.arange(3), [40, 10, 3])
    data = TensorDataset(torch.as_tensor(labels))
    s = BalancedBatchSampler(labels, classes_per_batch=2, samples_per_class=3, seed=1)
    got = [b[0].tolist() for b in DataLoader(data, batch_sampler=s)]
    assert got == [labels[b].tolist() for b in s]
    assert all(len(b) == 6 for b in got)


def test_balanced_batch_errors():
    with pytest.raises(ValueError, match="classes_per_batch must be <= the number of classes with positive weight \\(2\\); got 3"):
        len(BalancedBatchSampler(SKEW, classes_per_batch=3))
    with pytest.raises(ValueError, match="a class can fill at most one slot per batch"):
        len(BalancedBatchSampler(SKEW, classes_per_batch=2, weighting={0: 1.0, 1: 20.0}))


# ---------------------------------------------------------------- RepeatFactorSampler
def test_repeat_factors_follow_lvis_rule_with_stochastic_rounding():
    labels = np.repeat([0, 1, 2], [100, 10, 4])
    s = RepeatFactorSampler(labels, threshold=0.2, seed=0)
    f = np.array([100, 10, 4]) / 114
    assert np.allclose(s.repeat_factors(), np.maximum(1, np.sqrt(0.2 / f)))
    r = s.repeat_factors()
    lengths = set()
    for epoch in range(20):
        s.set_epoch(epoch)
        per_image = np.bincount(list(s), minlength=114)
        for c, (lo, hi) in enumerate([(0, 100), (100, 110), (110, 114)]):
            assert set(per_image[lo:hi].tolist()) <= {int(np.floor(r[c])), int(np.ceil(r[c]))}
        lengths.add(len(s))
    assert len(lengths) > 1  # stochastic rounding: the epoch length varies
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\] or None; got 2"):
        RepeatFactorSampler(labels, threshold=2)
    for bad in ("abc", "0.5", [0.1]):  # no float() crash, no silent string conversion
        with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\] or None; got "):
            RepeatFactorSampler(labels, threshold=bad)


# ---------------------------------------------------------------- ResampledSampler
def test_resampled_epoch_is_imbalanced_learns_resampling_reordered():
    labels = np.repeat([0, 1, 2], [30, 6, 3])
    s = ResampledSampler(labels, sampling_strategy="not majority", method="over", seed=3)
    s.set_epoch(2)
    got = np.sort(np.array(list(s)))
    expected = np.sort(resample_indices(labels, sampling_strategy="not majority", method="over", seed=(3, 2)))
    assert np.array_equal(got, expected)
    targets = check_sampling_strategy("not majority", np.bincount(labels), kind="over")
    assert np.bincount(labels[got]).tolist() == list(targets.values()) == [30, 30, 30]
    under = ResampledSampler(labels, sampling_strategy={0: 5}, method="under", seed=3)
    assert under.quotas() == {0: 5, 1: 6, 2: 3}
    named = ResampledSampler(labels, sampling_strategy={"c": 9}, classes=["a", "b", "c"], seed=0)
    assert named.quotas() == {0: 30, 1: 6, 2: 9}


def test_resampled_draws_first_cycle_then_repeats():
    labels = np.repeat([0, 1], [12, 3])
    s = ResampledSampler(labels, seed=0, yield_draws=True)
    minority = [d for d in s if labels[d.index] == 1]
    reps = [d.repeat for d in minority]
    assert len(reps) == 12 and reps == sorted(reps)  # imblearn adds draws at random; first draws come first
    assert sorted(d.index for d in minority[:3]) == [12, 13, 14]
    assert all(isinstance(d, Draw) for d in minority)


@pytest.mark.parametrize(
    ("classes", "offset", "n"),
    [(5, 0, 30_000), (5, 7, 30_000), (40, 0, 30_000), (300, 2, 30_000), (10, 0, 150_001), (64, 3, 150_001),
     (65, 0, 150_001), (1, 0, 70_000)],
)
@pytest.mark.parametrize("cpus", [1, 2])  # n >= 2^17 on two CPUs: the second half is sorted on a thread
def test_class_sorted_index_is_a_stable_sort_of_the_labels(monkeypatch, classes, offset, n, cpus):
    # n > 2^16: several sort blocks, the last one partial
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_cpus", lambda: cpus)
    labels = np.random.default_rng(classes).integers(0, classes, n) + offset
    s = ClassAwareSampler(labels)
    assert len(s) == n
    assert np.array_equal(s.order_, np.argsort(labels, kind="stable"))
    assert s.classes_.tolist() == list(range(offset, offset + classes))
    assert np.array_equal(s.offsets_, np.r_[0, np.cumsum(np.bincount(labels - offset))])


def test_draw_items_reach_the_dataset_through_a_dataloader():
    class Echo(torch.utils.data.Dataset):
        def __len__(self):
            return SKEW.size

        def __getitem__(self, key):
            return torch.tensor([key.index, key.repeat, key.epoch])

    sampler = ClassAwareSampler(SKEW, seed=3, yield_draws=True)
    sampler.set_epoch(2)
    got = torch.cat(list(DataLoader(Echo(), batch_size=16, sampler=sampler))).numpy()
    assert got.shape == (100, 3) and set(got[:, 2].tolist()) == {2}
    assert got[:, 0].tolist() == [d.index for d in sampler]
    assert got[:, 1].max() == 4  # the 10 minority images are each drawn 5 times: repeats 0..4


def test_resampled_callable_strategy_speaks_label_values():
    # sparse labels: dense ids 0, 1, 2 are labels 1, 2, 7; imbalanced-learn calls the
    # callable with the labels and reads its keys as labels
    labels = np.repeat([1, 2, 7], [30, 6, 3])
    seen = []

    def strategy(y):
        seen.append(np.unique(y).tolist())
        return {2: 30}

    s = ResampledSampler(labels, sampling_strategy=strategy, seed=0)
    assert s.quotas() == {1: 30, 2: 30, 7: 3}
    assert np.bincount(labels[list(s)], minlength=8)[[1, 2, 7]].tolist() == [30, 30, 3]
    assert s.target_frequencies()[2] == pytest.approx(30 / 63)
    assert seen and all(u == [1, 2, 7] for u in seen)
    named = ResampledSampler(labels, sampling_strategy=lambda y: {"h": 9}, classes=list("abcdefgh"), seed=0)
    assert named.quotas() == {1: 30, 2: 6, 7: 9}


@pytest.mark.parametrize("kind", ["tensor", "list", "tuple", "int32 tensor"])
def test_labels_as_tensor_list_or_tuple_build_the_same_sampler(kind):
    make = {
        "tensor": lambda: torch.tensor(SKEW),
        "list": lambda: SKEW.tolist(),
        "tuple": lambda: tuple(SKEW.tolist()),
        "int32 tensor": lambda: torch.tensor(SKEW, dtype=torch.int32),
    }[kind]
    for name in ("class_aware", "balanced_batch", "repeat_factor", "resampled"):
        from augbal.sampling import SAMPLERS

        got = SAMPLERS.build(name, labels=make(), seed=3)
        want = SAMPLERS.build(name, labels=SKEW, seed=3)
        assert list(got) == list(want), name


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("bogus", "sampling_strategy must be one of"),
        ({0: -3}, "target of class 0 must be an int >= 0"),
        ({"cat": 5}, "unknown class 'cat'"),
        (1.5, "sampling_strategy"),
    ],
)
def test_resampled_sampler_rejects_a_bad_strategy_when_built(strategy, message):
    """Not at the first len() or iteration, deep inside a training loop."""
    from augbal.sampling import ResampledSampler

    with pytest.raises(ValueError, match=message):
        ResampledSampler(np.array([0] * 8 + [1] * 2), sampling_strategy=strategy, classes=["deer", "dog"])


@pytest.mark.parametrize("k", [1, 37, 700, 1500])
def test_random_subset_of_a_large_class_is_the_same_on_either_scratch(monkeypatch, k):
    # a class over _SUBSET_WHOLE images draws block counts, then a subset per block, then shuffles the
    # subset: on int64 scratch (k <= _SUBSET_SCRATCH) or in the int32 output itself, with the same draws
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_SUBSET_WHOLE", 600)
    monkeypatch.setattr(_base, "_SUBSET_BLOCK", 128)
    members = (np.arange(1_500, dtype=np.int32) * 3)[::-1].copy()
    outs = []
    for scratch in (10_000, 0):
        monkeypatch.setattr(_base, "_SUBSET_SCRATCH", scratch)
        out = np.empty(k, dtype=np.int32)
        _base._random_subset(members, out, np.random.Generator(np.random.SFC64(5)))
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    assert np.unique(outs[0]).size == k and np.isin(outs[0], members).all()
    assert k < 700 or not np.array_equal(np.sort(outs[0]), outs[0])  # in random order


@pytest.mark.parametrize(
    "counts",
    [[30_000, 20_000, 10_000, 5_000, 536], [65_530, 3, 3], [1, 65_535], [65_536], [5] * 10, [0, 7, 0, 2], [3] * 40],
)
def test_class_order_block_holds_exactly_its_counts(counts):
    # independent draws, then corrected counts (or a shuffle, over _ARRANGE_MAX_CLASSES classes)
    from augbal.sampling import _base

    counts = np.array(counts)
    for seed in range(3):
        block = _base._arrangement(counts, np.random.Generator(np.random.SFC64(seed)), np.uint8)
        assert block.dtype == np.uint8 and np.array_equal(np.bincount(block, minlength=counts.size), counts)


@pytest.mark.parametrize("counts", [[2, 1, 1], [3, 2], [1, 1, 1, 1], [4, 1, 1]])
def test_class_order_block_is_uniform_over_arrangements(counts):
    # every arrangement of the multiset equally likely (chi-square over all of them, fixed seed)
    from math import factorial

    from augbal.sampling import _base
    from augbal.testing import chi_square_pvalue

    counts = np.array(counts)
    rng = np.random.Generator(np.random.SFC64(11))
    seen = collections.Counter(tuple(_base._arrangement(counts, rng, np.uint8).tolist()) for _ in range(20_000))
    arrangements = factorial(int(counts.sum())) // int(np.prod([factorial(int(c)) for c in counts]))
    assert len(seen) == arrangements
    assert chi_square_pvalue(list(seen.values()), [1 / arrangements] * arrangements) > 1e-3


def _epoch_draws(make, ahead: bool, monkeypatch) -> list:
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_AHEAD_MIN", 1 if ahead else 1 << 40)
    monkeypatch.setattr(_base, "_cpus", lambda: 2)
    monkeypatch.setattr(_base, "_BLOCK", 1 << 10)  # several blocks per epoch
    out = []
    for rank in range(3):
        s = make(rank)
        s.set_epoch(2)
        s._fit()
        plan = s._plan(2)
        assert (plan.blocks is not None) == (ahead and plan.cls is None)
        items = [(d.index, d.repeat) for d in s]
        batches = [(b.index.tolist(), b.repeat.tolist()) for b in s.batches(7)]
        s.load_state_dict({"epoch": 2, "yielded": len(s) - 1500, "seed": 4, "num_replicas": 3, "draws": 2})
        tail = [(d.index, d.repeat) for d in s]  # resumed inside the second-last block
        assert tail == items[-1500:]
        out.append((items, batches, tail, s.report()))
    return out


@pytest.mark.parametrize("kind", ["class_aware", "repeat_factor", "resampled", "no_replacement"])
def test_class_order_drawn_ahead_on_a_thread_is_the_lazy_one(monkeypatch, kind):
    labels = np.random.default_rng(1).choice(12, 12_000, p=np.r_[0.5, np.full(11, 0.5 / 11)])
    options = {"seed": 4, "num_replicas": 3, "yield_draws": True}

    def make(rank):
        if kind == "repeat_factor":
            return RepeatFactorSampler(labels, threshold=0.3, rank=rank, **options)
        if kind == "resampled":
            return ResampledSampler(labels, rank=rank, **options)
        if kind == "no_replacement":
            return ClassAwareSampler(labels, weighting="sqrt", replacement=False, drop_last=True, rank=rank, **options)
        return ClassAwareSampler(labels, weighting="balanced", num_samples=12_001, rank=rank, **options)

    lazy, ahead = _epoch_draws(make, False, monkeypatch), _epoch_draws(make, True, monkeypatch)
    assert lazy == ahead


def test_class_order_drawn_ahead_raises_the_threads_error(monkeypatch):
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_AHEAD_MIN", 1)
    monkeypatch.setattr(_base, "_cpus", lambda: 2)

    failed = threading.Event()
    original = ClassAwareSampler._order_block

    def broken(self, plan, b, counts):  # fails on the second thread; the caller's waits for that
        if threading.current_thread().name == "augbal-plan":
            failed.set()
            raise RuntimeError("class order failed")
        failed.wait(10)
        return original(self, plan, b, counts)

    monkeypatch.setattr(ClassAwareSampler, "_order_block", broken)
    with pytest.raises(RuntimeError, match="class order failed"):
        list(ClassAwareSampler(SKEW, seed=0))
    assert failed.is_set()


def test_no_thread_to_spare_falls_back_to_one_thread_with_the_same_draws(monkeypatch):
    # a process at its thread limit (a container's pids.max, ulimit -u) cannot start the class
    # index's or the class order's second thread: Thread.start raised "can't start new thread"
    import types

    from augbal.sampling import _base

    labels = np.random.default_rng(3).integers(0, 6, 1 << 17)
    monkeypatch.setattr(_base, "_cpus", lambda: 2)
    want = ClassAwareSampler(labels, seed=2, weighting="sqrt")
    want._fit()
    expected_order, expected = want.order_.copy(), np.concatenate(list(want.batches(4096)))
    assert want._plan(0).blocks is not None  # the drawn-ahead path (2^17 positions, 2 CPUs)

    class Refusing:
        def __init__(self, *args, **kwargs):
            pass

        def start(self):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_base, "threading", types.SimpleNamespace(Thread=Refusing, Condition=threading.Condition))
    got = ClassAwareSampler(labels, seed=2, weighting="sqrt")
    assert np.array_equal(np.concatenate(list(got.batches(4096))), expected)
    assert np.array_equal(got.order_, expected_order)
    assert got._plan(0).blocks is None


@pytest.mark.parametrize(("name", "value"), [("replacement", "false"), ("drop_last", "no"), ("yield_draws", 1)])
def test_flags_must_be_booleans_not_truthy_strings(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be True or False; got {value!r}$"):
        ClassAwareSampler(np.array([0, 0, 1]), **{name: value})


@pytest.mark.parametrize(("strategy", "kw", "message"), [
    ({9: 10}, {"method": "under"}, "got 10 for class 9$"),
    ({5: -1}, {}, "^the sampling_strategy target of class 5 must be an int >= 0; got -1$"),
    ({"n9": 10}, {"method": "under", "classes": [f"n{i}" for i in range(10)]}, "got 10 for class 'n9'$"),
])
def test_resampled_errors_name_the_class_as_the_caller_keyed_it(strategy, kw, message):
    from augbal.sampling import ResampledSampler

    labels = np.array([0] * 20 + [5] * 6 + [9] * 3)  # labels with gaps: dense indices 0, 1, 2
    with pytest.raises(ValueError, match=message):
        ResampledSampler(labels, sampling_strategy=strategy, **kw)


def test_fewer_draws_than_classes_does_not_always_skip_the_same_classes():
    """Largest remainder with equal remainders: the tie is drawn per epoch (it went to the lowest labels)."""
    s = ClassAwareSampler([0, 1, 2, 3, 4, 5], num_samples=3, seed=0)
    drawn = []
    for epoch in range(12):
        s.set_epoch(epoch)
        q = s.quotas()
        assert sorted(q.values()) == [0, 0, 0, 1, 1, 1]  # still exact: 3 draws, one class each
        drawn.append(frozenset(c for c, n in q.items() if n))
    assert set().union(*drawn) == {0, 1, 2, 3, 4, 5} and len(set(drawn)) > 1
    s.set_epoch(3)
    again = ClassAwareSampler([0, 1, 2, 3, 4, 5], num_samples=3, seed=0)
    again.set_epoch(3)
    assert again.quotas() == s.quotas()  # seeded: the same ties for the same (seed, epoch)


def test_weights_keyed_by_class_name_resolve_through_the_datasets_classes(tmp_path):
    from PIL import Image

    from augbal.data import ImageDataset, scan
    from augbal.sampling import BalancedBatchSampler

    for name, n in {"cat": 8, "dog": 4}.items():
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / name / f"{i}.png")
    dataset = ImageDataset(scan(tmp_path))
    s = ClassAwareSampler(dataset, weighting={"dog": 3.0}, num_samples=900)
    assert s.quotas() == {0: 360, 1: 540}  # 8 * 1 : 4 * 3
    assert s.to_dict()["weighting"] == {"name": "explicit", "weights": {"dog": 3.0}, "classes": ["cat", "dog"]}
    assert BalancedBatchSampler(dataset, samples_per_class=2, weighting={"dog": 3.0}).weighting.classes == ["cat", "dog"]
    with pytest.raises(ValueError, match="bird"):
        ClassAwareSampler(dataset, weighting={"bird": 3.0})


def test_weight_keys_stay_labels_when_labels_are_too_large_to_index():
    labels = np.array([0] * 10 + [2_000_000] * 10)  # counted by dense class past 2^20
    assert ClassAwareSampler(labels, weighting={2_000_000: 4}, num_samples=100).quotas() == {0: 20, 2_000_000: 80}
    deferred = {"name": "deferred", "switch_epoch": 1, "after": {2_000_000: 4}}
    assert ClassAwareSampler(labels, weighting=deferred, num_samples=100).quotas(1) == {0: 20, 2_000_000: 80}
    with pytest.raises(ValueError, match=r"weight key must be a class label of the data \(0, 2000000\); got 1$"):
        ClassAwareSampler(labels, weighting={1: 4}, num_samples=100).quotas()  # was applied to label 2,000,000


def test_blocks_filled_in_turns_keep_order_raise_and_stop_when_abandoned():
    # a drawn-ahead epoch fills its odd blocks on a second thread, at most two ahead of the caller
    from augbal.sampling import _base

    def work(i):
        if i == 7:
            raise ValueError("block 7 failed")
        return i * i

    assert list(_base._in_turns(work, list(range(7)))) == [i * i for i in range(7)]
    with pytest.raises(ValueError, match="block 7 failed"):  # raised on the helper thread, seen here
        list(_base._in_turns(work, list(range(10))))
    before = threading.active_count()
    it = _base._in_turns(lambda i: i, list(range(100)))
    assert next(it) == 0 and threading.active_count() == before + 1
    it.close()  # a loop that breaks off: the helper thread ends
    assert threading.active_count() == before


def test_an_iterator_never_advanced_holds_no_thread():
    from augbal.sampling import _base

    before = threading.active_count()
    it = _base._in_turns(lambda i: i, list(range(10)))
    assert threading.active_count() == before  # the helper starts with the first item
    del it
    assert threading.active_count() == before


def test_closing_a_batch_iterator_ends_its_fill_thread(monkeypatch):
    # a drawn-ahead epoch fills blocks on a helper thread while it is iterated; close() ends it
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_AHEAD_MIN", 1)
    monkeypatch.setattr(_base, "_cpus", lambda: 2)
    monkeypatch.setattr(_base, "_BLOCK", 64)  # 32 blocks: the helper waits two ahead of the caller
    s = ClassAwareSampler(np.repeat([0, 1], [1800, 200]), seed=0)
    before = threading.active_count()
    it = iter(s.batches(16))
    next(it)
    assert threading.active_count() == before + 1
    it.close()
    assert threading.active_count() == before
    assert s.state_dict()["yielded"] == 16


def test_a_state_saved_by_samplers_that_drew_other_sequences_warns_on_resume():
    # the draws for a (seed, epoch) changed on 2026-12-07: a mid-epoch state saved before cannot
    # continue the sequence it was part of, and says so; a state from this version resumes silently
    s = ClassAwareSampler(SKEW, seed=0)
    it = iter(s)
    [next(it) for _ in range(10)]
    state = s.state_dict()
    assert state["draws"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClassAwareSampler(SKEW, seed=0).load_state_dict(state)
        old_at_start = {k: v for k, v in state.items() if k != "draws"} | {"yielded": 0}
        ClassAwareSampler(SKEW, seed=0).load_state_dict(old_at_start)  # nothing drawn yet: nothing differs
    old = {k: v for k, v in state.items() if k != "draws"}
    with pytest.warns(UserWarning, match=r"drew other sequences \(draws=1; this augbal draws=2\).*epoch 0"):
        ClassAwareSampler(SKEW, seed=0).load_state_dict(old)
