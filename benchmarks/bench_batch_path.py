"""Batch path: one epoch of ``ClassAwareSampler.batches(B)`` vs ``BatchSampler(WeightedRandomSampler, B)``.

Each (sampler, N) case runs in its own subprocess: it builds the exponentially skewed
labels of ``bench_samplers.py`` (ratio 100 over 10 classes, int64, shuffled), then times,
from construction on, the first epoch and two later ones (``set_epoch``), iterated the way
a DataLoader's batch sampler is: ``for batch in batch_sampler``, touching each batch's
length. torch: ``BatchSampler(WeightedRandomSampler((1/n_c)[labels], N), B, False)``, the
per-sample weights built inside the timed region as a user must; augbal:
``ClassAwareSampler(labels, weighting="balanced", num_samples=N).batches(B)`` (int64 arrays,
no Python int per sample; ``yield_draws=True`` adds a repeat array per batch). No image is
loaded. Each case runs ``--repeats`` times, alternating the samplers; the fastest time is
reported and the ratio is taken within the same run (the machine is shared).

    python benchmarks/bench_batch_path.py --sizes 1000000 10000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from bench_samplers import skewed_labels  # the same labels as the item-mode benchmark (this folder is on sys.path)


def worker(kind: str, n: int, batch: int) -> dict:
    import torch
    from torch.utils.data import BatchSampler, WeightedRandomSampler

    from augbal.sampling import ClassAwareSampler

    labels = skewed_labels(n)
    start = time.perf_counter()
    if kind == "torch":
        class_w = 1.0 / np.bincount(labels)
        sampler = WeightedRandomSampler(torch.from_numpy(class_w[labels]), num_samples=n, replacement=True)
        batches = BatchSampler(sampler, batch, False)
    elif kind in ("augbal", "augbal-draws"):
        sampler = ClassAwareSampler(labels, weighting="balanced", num_samples=n, seed=0, yield_draws=kind != "augbal")
        batches = sampler.batches(batch)
    else:
        raise ValueError(kind)
    marks = [start]
    for epoch in range(3):
        if epoch and kind != "torch":
            sampler.set_epoch(epoch)
        count = 0
        for b in batches:
            count += len(b)
        marks.append(time.perf_counter())
        assert count == n, (count, n)
    return {"kind": kind, "n": n, "first_s": marks[1] - marks[0], "later_s": min(np.diff(marks[1:]).tolist())}


def run_case(kind: str, n: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(n), str(batch)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the fastest is reported")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "N", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))))
        return

    names = {
        "torch": "BatchSampler(WeightedRandomSampler)",
        "augbal": "ClassAwareSampler.batches",
        "augbal-draws": "ClassAwareSampler.batches, yield_draws",
    }
    print(f"B = {args.batch}, best of {args.repeats}\n")
    print("| N | batch sampler | 1st epoch s, incl. build | speed-up | later epoch s | speed-up | all runs, 1st epoch s |")
    print("|---|---|---:|---:|---:|---:|---|")
    for n in args.sizes:
        runs: dict[str, list[dict]] = {k: [] for k in names}
        for _ in range(args.repeats):  # alternate, so load drifts hit every sampler
            for kind in runs:
                runs[kind].append(run_case(kind, n, args.batch))
        best = {k: {f: min(r[f] for r in v) for f in ("first_s", "later_s")} for k, v in runs.items()}
        t = best["torch"]
        for kind, r in best.items():
            every = ", ".join(f"{x['first_s']:.3f}" for x in runs[kind])
            print(
                f"| {n:,} | {names[kind]} | {r['first_s']:.4f} | {t['first_s'] / r['first_s']:.1f}x "
                f"| {r['later_s']:.4f} | {t['later_s'] / r['later_s']:.1f}x | {every} |"
            )


if __name__ == "__main__":
    main()
