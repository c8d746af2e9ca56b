"""How far is ClassAwareSampler from the cost every sampler pays to feed a DataLoader?

Iterates one epoch of N indices through ``BatchSampler(sampler, 256)`` three ways, in the
same process: ``ClassAwareSampler`` (balanced), a plain list of N ints (the floor: handing
Python ints to a DataLoader, no sampling at all), and torch's ``WeightedRandomSampler``.

    python benchmarks/bench_sampler_floor.py --n 1000000 --rounds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from torch.utils.data import BatchSampler, WeightedRandomSampler

from augbal.sampling import ClassAwareSampler


def epoch_seconds(make_iterable) -> float:
    start = time.perf_counter()
    for _ in BatchSampler(make_iterable(), 256, drop_last=False):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    counts = np.floor(5000 * 100 ** (-np.arange(10) / 9))
    labels = rng.choice(10, size=args.n, p=counts / counts.sum()).astype(np.int64)
    sampler = ClassAwareSampler(labels, weighting="balanced", seed=0)
    weights = (1.0 / np.bincount(labels))[labels]
    plain = np.arange(args.n)

    def augbal():
        sampler.set_epoch(sampler.epoch + 1)
        return sampler

    cases = {
        "floor: list of N ints": lambda: iter(plain.tolist()),
        "ClassAwareSampler": augbal,
        "WeightedRandomSampler": lambda: WeightedRandomSampler(weights, args.n),
    }
    best = {name: min(epoch_seconds(make) for _ in range(args.rounds)) for name, make in cases.items()}
    floor = best["floor: list of N ints"]
    print(f"N = {args.n:,}, BatchSampler(256), best of {args.rounds}\n")
    print("| iterable | ms per epoch | vs floor |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / floor:.2f}x |")


if __name__ == "__main__":
    main()
