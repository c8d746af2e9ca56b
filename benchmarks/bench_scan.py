"""Benchmark: scan + hash an image folder (default: the 50,000 CIFAR-10 train JPEGs).

Compares ``augbal.data.scan`` with naive single-threaded baselines measured in the
same run, then times the near-duplicate pass (perceptual hashes + grouping)
separately. Prints a markdown table.

    python benchmarks/bench_scan.py --root /tmp/cifar/train --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import time


def _baseline_imagefolder_hash(root: str) -> int:
    """torchvision ImageFolder construction, then BLAKE2b-128 of every file, one thread."""
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(root, loader=lambda p: p)
    for path, _ in ds.samples:
        with open(path, "rb") as fh:
            hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
    return len(ds.samples)


def _baseline_imagefolder_hash_decode(root: str) -> int:
    """As above, plus a full Pillow decode of every file (the same work as scan's verify)."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(root, loader=lambda p: p)
    for path, _ in ds.samples:
        with open(path, "rb") as fh:
            hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
        with Image.open(path) as im:
            im.load()
    return len(ds.samples)


def _median_times(variants, rounds: int):
    """Run every variant once per round, interleaved (so load swings hit all alike); medians."""
    times = {name: [] for name, _ in variants}
    results = {}
    for _ in range(rounds):
        for name, fn in variants:
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/cifar/train", help="image folder root/<class>/<image>")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--workers", default="1,2,4", help="scan worker counts to time (comma-separated; processes on Linux)")
    parser.add_argument("--no-near", action="store_true", help="skip the near-duplicate pass")
    args = parser.parse_args()

    import torchvision.datasets  # noqa: F401 - import cost is not part of any timed row

    from augbal.data import find_duplicates, scan

    root = args.root
    # warm the page cache so every row reads from memory, not the first one from disk
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                fh.read()

    base = "baseline: ImageFolder + blake2b, 1 thread (no decode)"
    same = "baseline: ImageFolder + blake2b + Pillow decode, 1 thread"
    variants = [
        (base, lambda: _baseline_imagefolder_hash(root)),
        (same, lambda: _baseline_imagefolder_hash_decode(root)),
    ]
    for w in [int(x) for x in args.workers.split(",")]:
        variants.append((f"augbal scan (hash + full decode), {w} worker(s)", lambda w=w: len(scan(root, workers=w))))
    variants.append(("augbal scan (hash + header only, verify=False), default workers",
                     lambda: len(scan(root, verify=False))))
    variants.append(("augbal scan (hash + full decode), default workers", lambda: len(scan(root))))
    times, counts = _median_times(variants, args.rounds)
    n = counts[base]

    near_rows = []
    if not args.no_near:
        idx = scan(root)
        near_times, near_results = _median_times(
            [
                ("find_duplicates(near=True) on a plain scan: phash every file + group",
                 lambda: find_duplicates(idx, near=True).summary()),
                ("scan(near_duplicates=True): one pass, phash while decoded",
                 lambda: scan(root, near_duplicates=True).meta["duplicates"]),
            ],
            1,
        )
        idx_near = scan(root, near_duplicates=True)
        t = time.perf_counter()
        summary = find_duplicates(idx_near, near=True).summary()
        near_times["find_duplicates on stored phashes (grouping only)"] = time.perf_counter() - t
        near_results["find_duplicates on stored phashes (grouping only)"] = summary
        near_rows = [(name, near_times[name], near_results[name]) for name in near_times]

    print(f"root: {root}   files: {n}   machine: {platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared, noisy), Python {platform.python_version()}; median of {args.rounds} interleaved rounds")
    print()
    print("| run | seconds | files/s | speed vs hash-only baseline | speed vs hash+decode baseline |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {counts[name] / seconds:,.0f} | {times[base] / seconds:.2f}x | "
              f"{times[same] / seconds:.2f}x |")
    if near_rows:
        print()
        print("| near-duplicate pass (1 run) | seconds | exact groups | near groups | cross-class groups |")
        print("|---|---:|---:|---:|---:|")
        for name, seconds, summary in near_rows:
            print(f"| {name} | {seconds:.2f} | {summary['exact_groups']} | {summary['near_groups']} | "
                  f"{summary['cross_class_groups']} |")


if __name__ == "__main__":
    main()
