"""Real torch.distributed runs: 2 and 3 CPU processes (gloo); samplers find rank/world themselves."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from augbal.sampling import BalancedBatchSampler, ClassAwareSampler

pytestmark = pytest.mark.slow

LABELS = np.repeat(np.arange(3), [500, 80, 17])


def _worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        results = {}
        for epoch in (0, 1):
            no_repeat = ClassAwareSampler(LABELS, replacement=False, seed=5)  # rank/world from dist
            no_repeat.set_epoch(epoch)
            balanced = ClassAwareSampler(LABELS, seed=5)
            balanced.set_epoch(epoch)
            batches = BalancedBatchSampler(LABELS, classes_per_batch=2, samples_per_class=3, seed=5)
            batches.set_epoch(epoch)
            results[epoch] = {
                "world": (no_repeat.num_replicas, no_repeat.rank),
                "no_repeat": list(no_repeat),
                "no_repeat_quota": no_repeat.report().target_counts,
                "balanced": list(balanced),
                "balanced_quota": balanced.report().target_counts,
                "batches": list(batches),
            }
        gathered = [None] * world
        dist.all_gather_object(gathered, results)
        if rank == 0:
            Path(out).write_bytes(pickle.dumps(gathered))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_disjoint_balanced_shards_of_one_global_sequence(world, tmp_path):
    out = tmp_path / "gathered.pkl"
    # fork: the children inherit the imported modules (spawn would re-import torch per process)
    mp.start_processes(_worker, args=(world, str(tmp_path / "store"), str(out)), nprocs=world, start_method="fork")
    gathered = pickle.loads(out.read_bytes())
    for epoch in (0, 1):
        ranks = [g[epoch] for g in gathered]
        assert [r["world"] for r in ranks] == [(world, k) for k in range(world)]

        # without replacement: disjoint shards of equal length, interleaving = the global sequence
        shards = [r["no_repeat"] for r in ranks]
        assert len({len(s) for s in shards}) == 1
        union = set().union(*map(set, shards))
        assert len(union) == sum(map(len, shards))
        reference = ClassAwareSampler(LABELS, replacement=False, seed=5, num_replicas=world, rank=0)
        reference.set_epoch(epoch)
        global_sequence = [x for row in zip(*shards) for x in row]
        for k, shard in enumerate(shards):  # what each rank derived alone = the shard of one global plan
            explicit = ClassAwareSampler(LABELS, replacement=False, seed=5, num_replicas=world, rank=k)
            explicit.set_epoch(epoch)
            assert list(explicit) == shard
        assert sorted(global_sequence) == sorted(set(global_sequence))  # no image twice in the epoch
        assert np.bincount(LABELS[global_sequence], minlength=3).tolist() == list(reference.quotas().values())
        for r, shard in zip(ranks, shards):
            assert np.bincount(LABELS[shard], minlength=3).tolist() == list(r["no_repeat_quota"].values())

        # with replacement: each rank's class counts are its quota, floor/ceil of the global one
        quotas = np.array(list(ClassAwareSampler(LABELS, seed=5, num_replicas=world, rank=0).quotas(epoch).values()))
        for r in ranks:
            counts = np.bincount(LABELS[r["balanced"]], minlength=3)
            assert counts.tolist() == list(r["balanced_quota"].values())
            assert np.all((counts == quotas // world) | (counts == -(-quotas // world)))

        # world-size invariance: the ranks' union is the single-process epoch (597 = 3 * 199;
        # with 2 ranks one padding draw, a repeat of a class's first draw, is added)
        single = ClassAwareSampler(LABELS, seed=5)
        single.set_epoch(epoch)
        union = Counter(x for r in ranks for x in r["balanced"])
        alone = Counter(single)
        assert (union - alone).total() == (0 if world == 3 else 1) and not alone - union

        # batches: same number per rank, every batch 3 images of 2 distinct classes
        assert len({len(r["batches"]) for r in ranks}) == 1
        for r in ranks:
            for b in r["batches"]:
                assert sorted(np.bincount(LABELS[b], minlength=3).tolist()) == [0, 3, 3]
    assert gathered[0][0]["balanced"] != gathered[0][1]["balanced"]  # epochs differ
