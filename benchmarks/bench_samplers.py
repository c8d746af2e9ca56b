"""Throughput and peak memory of one epoch: augbal ClassAwareSampler vs torch WeightedRandomSampler.

Each (sampler, N) case runs in its own subprocess: it builds an exponentially skewed
label array (ratio 100 over 10 classes, int64, as a dataset's ``targets`` would be),
resets the peak-RSS counter, then builds the sampler *with the same class weights*
(balanced, 1/n_c; for torch that means a float64 weight per sample) and iterates one
full epoch the way a DataLoader does (``BatchSampler(sampler, 256, False)``). Time
includes construction for the first epoch; a second epoch (``set_epoch(1)``) is timed
too. Memory is the peak RSS over both epochs above the labels-only baseline. Each case
runs ``--repeats`` times, alternating the two samplers; the fastest time and the largest
peak are reported (the machine is shared: compare ratios, not absolute figures).

    python benchmarks/bench_samplers.py --sizes 1000000 10000000 --huge 100000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def skewed_labels(n: int, classes: int = 10, ratio: float = 100.0) -> np.ndarray:
    shares = ratio ** (-np.arange(classes) / (classes - 1))
    counts = np.floor(shares / shares.sum() * n).astype(np.int64)
    counts[0] += n - counts.sum()
    labels = np.repeat(np.arange(classes, dtype=np.int64), counts)
    np.random.default_rng(0).shuffle(labels)
    return labels


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def worker(kind: str, n: int) -> dict:
    import torch
    from torch.utils.data import BatchSampler, WeightedRandomSampler

    from augbal.sampling import ClassAwareSampler

    labels = skewed_labels(n)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter: measure from here
    base = _status("VmRSS")
    start = time.perf_counter()
    if kind == "torch":
        class_w = 1.0 / np.bincount(labels)
        sampler = WeightedRandomSampler(torch.from_numpy(class_w[labels]), num_samples=n, replacement=True)
    elif kind == "augbal":
        sampler = ClassAwareSampler(labels, weighting="balanced", num_samples=n, seed=0)
    else:
        raise ValueError(kind)
    built = time.perf_counter()
    times = []
    for epoch in range(2):  # the first epoch pays for building (weights / class index), the next does not
        if epoch and kind == "augbal":
            sampler.set_epoch(epoch)
        count = 0
        for batch in BatchSampler(sampler, 256, False):
            count += len(batch)
        times.append(time.perf_counter())
        assert count == n, (count, n)
    return {
        "kind": kind,
        "n": n,
        "seconds": times[0] - start,
        "next_s": times[1] - times[0],
        "build_s": built - start,
        "peak_mb": (_status("VmHWM") - base) / 2**20,
    }


def run_case(kind: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_limit() -> str:
    """What WeightedRandomSampler does past torch.multinomial's 2^24 categories."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    try:
        next(iter(WeightedRandomSampler(torch.ones(2**24 + 1, dtype=torch.float64), num_samples=10)))
    except RuntimeError as e:
        return str(e).splitlines()[0]
    return "no error"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the fastest is reported")
    parser.add_argument("--huge", type=int, default=0, help="also run augbal alone at this N (e.g. 100000000)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return

    print(
        "| N | sampler | 1st epoch s, incl. build (best of %d) | M indices/s | speed-up "
        "| next epoch s | M indices/s | speed-up | peak MB | memory ratio |" % args.repeats
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        runs: dict[str, list[dict]] = {"torch": [], "augbal": []}
        for _ in range(args.repeats):  # alternate the two so load drifts hit both
            for kind in runs:
                runs[kind].append(run_case(kind, n))
        # fastest time, largest peak memory of the repeats
        best = {
            k: {
                "seconds": min(r["seconds"] for r in v),
                "next_s": min(r["next_s"] for r in v),
                "peak_mb": max(r["peak_mb"] for r in v),
            }
            for k, v in runs.items()
        }
        t, a = best["torch"], best["augbal"]
        for r in (t, a):
            print(
                f"| {n:,} | {'WeightedRandomSampler' if r is t else 'ClassAwareSampler'} "
                f"| {r['seconds']:.3f} | {n / r['seconds'] / 1e6:.2f} | {t['seconds'] / r['seconds']:.1f}x "
                f"| {r['next_s']:.3f} | {n / r['next_s'] / 1e6:.2f} | {t['next_s'] / r['next_s']:.1f}x "
                f"| {r['peak_mb']:.0f} | {r['peak_mb'] / t['peak_mb']:.2f} |"
            )
    if args.huge:
        r, h = run_case("augbal", args.huge), args.huge
        print(
            f"| {h:,} | ClassAwareSampler | {r['seconds']:.2f} | {h / r['seconds'] / 1e6:.2f} | n/a "
            f"| {r['next_s']:.2f} | {h / r['next_s'] / 1e6:.2f} | n/a | {r['peak_mb']:.0f} | n/a |"
        )
        print(f"\nWeightedRandomSampler with 2^24 + 1 samples: `{torch_limit()}`")


if __name__ == "__main__":
    main()
