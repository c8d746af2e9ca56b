"""DDP plumbing of augbal train: real gloo process groups on CPU (fork), sharding and gathering."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from augbal.train._distributed import DistContext, all_reduce_sum, gather_rows, init_distributed, shard_indices
from augbal.train._loop import ShuffleBatches

pytestmark = pytest.mark.slow

N = 11  # not a multiple of the world size: shards differ in length


def _plumbing(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        ctx = init_distributed("cpu")  # adopts the group
        rows = torch.arange(N * 2, dtype=torch.float32).reshape(N, 2)
        mine = rows[list(shard_indices(N, ctx))]
        gathered = gather_rows(mine, N, ctx)
        total = all_reduce_sum(torch.tensor([float(rank + 1)], dtype=torch.float64), ctx)
        batches = ShuffleBatches(N, 2, seed=3, ctx=ctx)
        batches.set_epoch(1)
        mine_batches = [b.index.tolist() for b in batches]
        result = {"ctx": (ctx.rank, ctx.world_size, ctx.owns_group), "gathered": gathered, "total": float(total),
                  "batches": mine_batches, "epochs": [b.epoch for b in batches]}
        everything = [None] * world
        dist.all_gather_object(everything, result)
        if rank == 0:
            Path(out).write_bytes(pickle.dumps(everything))
    finally:
        dist.destroy_process_group()


def test_gather_restores_the_single_process_order_and_shuffle_shards_interleave(tmp_path):
    out = tmp_path / "out.pkl"
    mp.start_processes(_plumbing, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, start_method="fork")
    ranks = pickle.loads(out.read_bytes())
    assert [r["ctx"] for r in ranks] == [(0, 2, False), (1, 2, False)]
    expected = torch.arange(N * 2, dtype=torch.float32).reshape(N, 2)
    for r in ranks:
        assert torch.equal(r["gathered"], expected)
        assert r["total"] == 3.0
        assert set(r["epochs"]) == {1}
    # the union of the ranks' i-th batches (2 items each) is the single process's i-th batch of 4
    single = ShuffleBatches(N, 4, seed=3, ctx=DistContext(0, 1, 0, torch.device("cpu")))
    single.set_epoch(1)
    alone = [b.index.tolist() for b in single]
    a, b = ranks[0]["batches"], ranks[1]["batches"]
    assert len(a) == len(b) == 3
    union = [sorted(x + y) for x, y in zip(a, b)]
    # 11 items padded to 12 by the DistributedSampler: the last global batch holds one repeat
    assert union[:2] == [sorted(x) for x in alone[:2]]
    assert set(alone[2]) <= set(union[2])
    flat = [i for batch in union for i in batch]
    assert sorted(set(flat)) == list(range(N)) and len(flat) == 12


def test_one_process_without_torchrun_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed, ctx.owns_group) == (0, 1, True, False, False)
    rows = torch.ones(3, 2)
    assert gather_rows(rows, 3, ctx) is rows
    assert list(shard_indices(3, ctx)) == [0, 1, 2]


def test_a_device_that_is_not_there_is_refused():
    from augbal.train._distributed import resolve_device

    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="without CUDA"):
            resolve_device("cuda")


def test_shuffle_batches_are_seeded_by_seed_and_epoch():
    ctx = DistContext(0, 1, 0, torch.device("cpu"))

    def epoch(seed: int, e: int) -> list[list[int]]:
        b = ShuffleBatches(20, 8, seed=seed, ctx=ctx)
        b.set_epoch(e)
        return [x.index.tolist() for x in b]

    assert epoch(0, 0) == epoch(0, 0)
    assert epoch(0, 0) != epoch(0, 1) and epoch(0, 0) != epoch(1, 0)
    assert sorted(i for b in epoch(0, 2) for i in b) == list(range(20))
    assert np.diff([len(b) for b in epoch(0, 0)]).tolist() == [0, -4]
