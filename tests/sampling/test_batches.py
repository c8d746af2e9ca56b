"""Batch mode: ``sampler.batches(B)`` yields int64 arrays (or DrawBatch), the same sequence and state as items."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from augbal import DrawBatch
from augbal._draw import Draw
from augbal.sampling import SAMPLERS, BalancedBatchSampler, ClassAwareSampler, SamplerBatches

LABELS = np.random.default_rng(3).permutation(np.repeat(np.arange(4), [300, 60, 20, 6]))
NAMES = SAMPLERS.names()


def build(name, **kwargs):
    return SAMPLERS.build(name, labels=LABELS, seed=4, **kwargs)


def items(sampler):
    """Item mode's sequence, flattened (batch samplers yield lists)."""
    out = []
    for x in sampler:
        out.extend(x if isinstance(x, list) else [x])
    return out


def keys(batch):
    if isinstance(batch, DrawBatch):
        return list(batch)
    assert isinstance(batch, np.ndarray) and batch.dtype == np.int64 and batch.ndim == 1
    return batch.tolist()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("yield_draws", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_are_batch_sampler_over_the_items(name, yield_draws, drop_last):
    for world, rank, epoch in ((1, 0, 0), (3, 2, 5)):
        s = build(name, yield_draws=yield_draws, num_replicas=world, rank=rank)
        s.set_epoch(epoch)
        flat = items(s)
        size = s._unit * (7 if s._unit > 1 else 37)
        want = [list(b) for b in BatchSampler(flat, size, drop_last)]
        batches = s.batches(size, drop_last=drop_last)
        got = [keys(b) for b in batches]
        assert got == want
        assert len(batches) == len(want)
        if yield_draws:
            assert all(isinstance(d, Draw) and d.epoch == epoch for b in got for d in b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("yield_draws", [False, True])
def test_resume_mid_epoch_gives_the_same_continuation_in_both_modes(name, yield_draws):
    s = build(name, yield_draws=yield_draws)
    s.set_epoch(2)
    flat = items(s)
    u = s._unit
    size = 5 * u
    # stop after 3 batches in batch mode: the state says 15 units, item mode continues there
    it = iter(s.batches(size))
    head = [k for b in itertools.islice(it, 3) for k in keys(b)]
    state = s.state_dict()
    assert state["yielded"] == 15 and head == flat[: 15 * u]
    item_mode = build(name, yield_draws=yield_draws)
    item_mode.load_state_dict(state)
    assert items(item_mode) == flat[15 * u :]
    batch_mode = build(name, yield_draws=yield_draws)
    batch_mode.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert [k for b in batch_mode.batches(size) for k in keys(b)] == flat[15 * u :]
    assert batch_mode.state_dict()["yielded"] == len(s)
    # a position saved in item mode, not on a batch boundary, continues in batch mode
    part = build(name, yield_draws=yield_draws)
    part.set_epoch(2)
    next_items = list(itertools.islice(iter(part), 4))
    saved = part.state_dict()
    assert saved["yielded"] == 4 and [k for x in next_items for k in (x if isinstance(x, list) else [x])] == flat[: 4 * u]
    again = build(name, yield_draws=yield_draws)
    again.load_state_dict(saved)
    rest = [keys(b) for b in again.batches(size)]
    assert [k for b in rest for k in b] == flat[4 * u :] and len(rest[0]) == size
    # set_epoch with the saved epoch keeps the loaded position, as in item mode; pickling keeps it too
    s2 = build(name, yield_draws=yield_draws)
    s2.load_state_dict(state)
    s2.set_epoch(2)
    clone = pickle.loads(pickle.dumps(s2))
    assert [k for b in clone.batches(size) for k in keys(b)] == flat[15 * u :]


def test_state_mid_batch_iteration_counts_the_batches_handed_out():
    s = ClassAwareSampler(LABELS, seed=1)
    it = iter(s.batches(100))
    assert s.state_dict()["yielded"] == 0
    next(it)
    next(it)
    assert s.state_dict()["yielded"] == 200
    rest = list(it)
    assert [r.size for r in rest] == [100, 86]
    assert s.state_dict()["yielded"] == 386 == len(s)
    first = np.concatenate(rest)
    again = list(s.batches(100))  # iterating again replays the epoch, as item mode does
    assert len(again) == 4 and np.array_equal(np.concatenate(again[2:]), first)
    s.load_state_dict(s.state_dict())  # a loaded finished epoch yields nothing until set_epoch
    assert list(s.batches(100)) == []
    s.set_epoch(1)
    assert len(list(s.batches(100))) == 4


def test_batches_of_a_large_epoch_cross_the_internal_blocks():
    labels = np.repeat(np.arange(3), [150_000, 40_000, 10_000])
    s = ClassAwareSampler(labels, seed=0)
    flat = np.array(list(s), dtype=np.int64)
    got = list(s.batches(1000))
    assert len(got) == 200 and all(b.size == 1000 for b in got)
    assert np.array_equal(np.concatenate(got), flat)
    odd = list(s.batches(999))  # not a divisor of the 65,536-item blocks: carried across them
    assert np.array_equal(np.concatenate(odd), flat) and [b.size for b in odd[-2:]] == [999, 200_000 % 999]


def test_batch_sampler_batches_default_to_its_own_batches():
    s = BalancedBatchSampler(LABELS, classes_per_batch=2, samples_per_class=3, seed=0)
    own = [np.array(b) for b in s]
    got = list(s.batches())
    assert len(got) == len(own) == len(s.batches()) and all(np.array_equal(a, b) for a, b in zip(got, own))
    assert [a.size for a in s.batches(12)][:3] == [12, 12, 12]
    with pytest.raises(ValueError, match="batch_size must be a multiple of this sampler's batch of 6 items; got 8"):
        s.batches(8)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "batch_size must be an int >= 1; got None"),
        ((0,), {}, "batch_size must be an int >= 1; got 0"),
        ((True,), {}, "batch_size must be an int >= 1; got True"),
        ((8,), {"drop_last": "yes"}, "drop_last must be a bool; got 'yes'"),
    ],
)
def test_batches_arguments_are_checked(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassAwareSampler(LABELS).batches(*args, **kwargs)


class _Echo(Dataset):
    """No __getitems__: the DataLoader hands it the batch's elements one by one."""

    def __len__(self):
        return LABELS.size

    def __getitem__(self, key):
        if isinstance(key, Draw):
            return torch.tensor([key.index, key.repeat, key.epoch])
        assert isinstance(key, np.integer)
        return torch.tensor([int(key), -1, -1])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_takes_batches_as_batch_sampler(workers):
    for yield_draws in (False, True):
        s = ClassAwareSampler(LABELS, seed=2, yield_draws=yield_draws)
        s.set_epoch(1)
        want = [(d.index, d.repeat, d.epoch) if yield_draws else (d, -1, -1) for d in s]
        batches = s.batches(64)
        assert isinstance(batches, SamplerBatches)
        loader = DataLoader(_Echo(), batch_sampler=batches, num_workers=workers)
        assert len(loader) == 7
        got = torch.cat(list(loader)).tolist()
        assert [tuple(g) for g in got] == want


def test_draw_batch_slices_are_draw_batches():
    batch = DrawBatch(np.array([7, 3, 5, 1]), np.array([0, 2, 1, 0]), epoch=4)
    part = batch[1:3]
    assert isinstance(part, DrawBatch)
    assert part.index.tolist() == [3, 5] and part.repeat.tolist() == [2, 1] and part.epoch == 4
    assert batch[-1] == Draw(1, 0, 4)
    assert list(batch[::2]) == [Draw(7, 0, 4), Draw(5, 1, 4)]


def test_batch_view_forwards_set_epoch_and_state_to_its_sampler():
    labels = np.repeat(np.arange(3), [40, 8, 2])
    sampler = ClassAwareSampler(labels, weighting="balanced", seed=3)
    batches = sampler.batches(8)
    batches.set_epoch(2)
    assert sampler.epoch == 2
    it = iter(batches)
    first = [next(it).tolist() for _ in range(2)]
    state = batches.state_dict()
    assert state == sampler.state_dict()
    rest = [b.tolist() for b in it]
    again = ClassAwareSampler(labels, weighting="balanced", seed=3).batches(8)
    again.load_state_dict(state)
    assert [b.tolist() for b in again] == rest and first


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("yield_draws", [False, True])
def test_state_after_every_batch_counts_it_across_internal_blocks(monkeypatch, name, yield_draws):
    # batches are handed out as rows of each block's array; the position must still count each one
    from augbal.sampling import _base

    monkeypatch.setattr(_base, "_BLOCK", 64)  # several blocks, none a multiple of the batch
    s = build(name, yield_draws=yield_draws)
    unit = s._unit
    size = 3 * unit if unit > 1 else 37
    handed = 0
    for batch in s.batches(size):
        handed += len(batch)
        assert s.state_dict()["yielded"] == handed // unit
    assert handed // unit == len(s) and handed == len(items(s))
