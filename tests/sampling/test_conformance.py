"""Checks every registered sampler passes (SAMPLERS.names(): a new sampler is tested automatically)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from scipy.stats import chi2

from augbal._draw import Draw
from augbal.sampling import SAMPLERS

LABELS = np.repeat(np.arange(4), [300, 60, 20, 6])
rng = np.random.default_rng(7)
LABELS = LABELS[rng.permutation(LABELS.size)]  # interleaved classes, as in a real dataset
NAMES = SAMPLERS.names()


def build(name, **kwargs):
    return SAMPLERS.build(name, labels=LABELS, **kwargs)


def flat(items):
    """Dataset indices of a sampler's output (ints, Draws, or batches of either)."""
    out = []
    for item in items:
        for x in item if isinstance(item, list) else [item]:
            out.append(x.index if isinstance(x, Draw) else x)
    return np.array(out, dtype=np.int64)


def chi_square_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs / probs.sum() * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, df=counts.size - 1))


def test_registry_holds_every_sampler():
    assert {"class_aware", "balanced_batch", "repeat_factor", "resampled"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_seed_and_epoch(name):
    a, b = build(name, seed=3), build(name, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again replays the epoch
    other = build(name, seed=4)
    other.set_epoch(2)
    assert list(other) != list(a)


@pytest.mark.parametrize("name", NAMES)
def test_set_epoch_changes_the_order(name):
    s = build(name, seed=0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert first != second
    s.set_epoch(0)
    assert list(s) == first


@pytest.mark.parametrize("name", NAMES)
def test_len_matches_iteration(name):
    for epoch in range(3):
        s = build(name, seed=1)
        s.set_epoch(epoch)
        assert len(list(s)) == len(s) > 0


@pytest.mark.parametrize("name", NAMES)
def test_pickling_roundtrip_and_mid_epoch(name):
    s = build(name, seed=5)
    s.set_epoch(1)
    clone = pickle.loads(pickle.dumps(s))
    whole = list(s)
    assert list(clone) == whole
    assert list(pickle.loads(pickle.dumps(s))) == []  # pickled after the epoch: nothing left of it
    it = iter(s)
    head = list(itertools.islice(it, 7))
    resumed = pickle.loads(pickle.dumps(s))  # pickled mid-epoch: continues where it stopped
    assert head + list(resumed) == whole


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [0, 1, 13, "end"])
def test_resume_equals_uninterrupted_run(name, cut):
    s = build(name, seed=9)
    s.set_epoch(3)
    whole = list(s)
    cut = len(whole) if cut == "end" else cut
    it = iter(s)
    head = list(itertools.islice(it, cut))
    state = s.state_dict()
    assert state["yielded"] == cut and state["epoch"] == 3
    fresh = build(name, seed=9)
    fresh.load_state_dict(state)
    assert head + list(fresh) == whole
    assert list(fresh) == whole  # the resume applies to one iteration only


@pytest.mark.parametrize("name", NAMES)
def test_draws_carry_index_repeat_and_epoch(name):
    plain, draws = build(name, seed=2), build(name, seed=2, yield_draws=True)
    plain.set_epoch(4)
    draws.set_epoch(4)
    items = list(draws)
    assert np.array_equal(flat(items), flat(list(plain)))
    seen: dict[int, int] = {}
    for d in (x for item in items for x in (item if isinstance(item, list) else [item])):
        assert isinstance(d, Draw) and d.epoch == 4
        assert d.repeat == seen.get(d.index, 0)  # the k-th draw of an image says k
        seen[d.index] = d.repeat + 1


@pytest.mark.parametrize("name", NAMES)
def test_realised_class_frequencies_match_the_target(name):
    s = build(name, seed=11)
    counts = np.zeros(4, dtype=np.int64)
    for epoch in range(20):  # ~8k draws: enough to see a 10% error in one class's share
        s.set_epoch(epoch)
        counts += np.bincount(LABELS[flat(s)], minlength=4)
    target = np.array(list(s.target_frequencies().values()))
    assert chi_square_pvalue(counts, target) > 0.01
    # the check has power: the data's own (imbalanced) frequencies, or a 10% distortion
    # of the target, are rejected at this sample size
    assert chi_square_pvalue(counts, np.bincount(LABELS).astype(float)) < 1e-6
    assert chi_square_pvalue(counts, target * np.array([1.1, 1.0, 1.0, 0.9])) < 1e-4


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("replicas", [2, 3])
def test_shards_are_equal_and_carry_their_quota(name, replicas):
    shards = [build(name, seed=6, num_replicas=replicas, rank=r) for r in range(replicas)]
    outputs = [flat(list(s)) for s in shards]
    assert len({len(list(s)) for s in shards}) == 1
    total = np.zeros(4, dtype=np.int64)
    for s, out in zip(shards, outputs):
        counts = np.bincount(LABELS[out], minlength=4)
        assert counts.tolist() == list(s.report().target_counts.values())
        total += counts
    quotas = np.array(list(shards[0].quotas().values()))
    assert total.tolist() == quotas.tolist()
    # every replica's class mix is balanced: each holds floor or ceil of quota / replicas
    for out in outputs:
        counts = np.bincount(LABELS[out], minlength=4)
        per_unit = 1 if not isinstance(list(shards[0])[0], list) else len(list(shards[0])[0])
        share = quotas / replicas
        assert np.all(np.abs(counts - share) <= per_unit), (counts, share)


@pytest.mark.parametrize("name", NAMES)
def test_resume_survives_set_epoch_at_the_top_of_the_loop(name):
    s = build(name, seed=9)
    s.set_epoch(3)
    whole = list(s)
    head = list(itertools.islice(iter(s), 13))
    fresh = build(name, seed=9)
    fresh.load_state_dict(s.state_dict())
    fresh.set_epoch(3)  # a training loop calls set_epoch(epoch) before every epoch, the resumed one too
    assert head + list(fresh) == whole
    fresh.set_epoch(3)  # once iterated, set_epoch replays the epoch from its start
    assert list(fresh) == whole
    resumed = pickle.loads(pickle.dumps(s))  # the same for a sampler pickled mid-epoch
    resumed.set_epoch(3)
    assert head + list(resumed) == whole
    moved = build(name, seed=9)
    moved.load_state_dict(s.state_dict())
    moved.set_epoch(4)  # another epoch starts afresh
    assert len(list(moved)) == len(moved)
