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


def test_torchrun_with_two_gloo_processes_equals_one_process(tmp_path):
    """``torchrun --nproc_per_node 2 -m augbal train``: per-rank batch 8 with gradient averaging
    takes the steps of one process with batch 16; validation logits are gathered, so the
    metrics and the weights after each epoch equal a single-process run's."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    import yaml

    spec = importlib.util.spec_from_file_location("_loop_helpers", Path(__file__).with_name("test_loop.py"))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from augbal.train import train

    torch.set_num_threads(1)
    folder = helpers.make_folder(tmp_path / "data")
    recipe = helpers.tiny_recipe(folder, epochs=2, **{"optim.lr": 1e-2})
    single = train({**recipe, "cache": {"dir": str(tmp_path / "cache1")}}, out=tmp_path / "single")

    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**recipe, "cache": {"dir": str(tmp_path / "cache2")}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "augbal", "train", "--recipe", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "ddp"), "--no-test"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 1/2") == 1  # rank 0 alone prints

    a = [json.loads(x) for x in (single.run_dir / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        assert ra["val"]["confusion"] == rb["val"]["confusion"]
        assert ra["val"]["n"] == rb["val"]["n"]
        for key in ("loss", "loss_weighted", "loss_uniform_prior", "balanced_accuracy", "ece"):
            assert rb["val"][key] == pytest.approx(ra["val"][key], abs=1e-6), key
        assert rb["train"]["loss"] == pytest.approx(ra["train"]["loss"], abs=1e-6)
    wa = torch.load(single.run_dir / "last.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    from augbal.train import build_model

    initial, _ = build_model(3, weights="none", input_size=32, mean=[0.5] * 3, std=[0.25] * 3, seed=0)
    assert not torch.allclose(initial.fc.weight, wa["fc.weight"], atol=1e-3)  # the head did train
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), atol=1e-6), key
