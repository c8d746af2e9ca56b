"""Benchmark: scan + hash an image folder (default: the 50,000 CIFAR-10 train JPEGs).

Compares ``augbal.data.scan`` with naive single-threaded baselines measured in the
same run, then times the near-duplicate pass (perceptual hashes + grouping)
separately. Prints a markdown table.

    python benchmarks/bench_scan.py --root /tmp/cifar/train
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
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


def _time(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/cifar/train", help="image folder root/<class>/<image>")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the best is kept")
    parser.add_argument("--workers", type=int, default=None, help="scan threads (default: scan's default)")
    parser.add_argument("--no-near", action="store_true", help="skip the near-duplicate pass")
    args = parser.parse_args()

    from augbal.data import find_duplicates, scan

    root = args.root
    # warm the page cache so every row reads from memory, not the first one from disk
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                fh.read()

    rows = []
    base_s, n = _time(lambda: _baseline_imagefolder_hash(root), args.repeat)
    rows.append(("baseline: ImageFolder + blake2b, 1 thread (no decode)", base_s, n))
    t, n2 = _time(lambda: _baseline_imagefolder_hash_decode(root), args.repeat)
    rows.append(("baseline: ImageFolder + blake2b + Pillow decode, 1 thread", t, n2))
    t, idx = _time(lambda: scan(root, workers=1), args.repeat)
    rows.append(("augbal scan, verify (full decode), 1 thread", t, len(idx)))
    t, idx = _time(lambda: scan(root, workers=args.workers), args.repeat)
    rows.append((f"augbal scan, verify (full decode), {args.workers or 'default'} threads", t, len(idx)))
    scan_s = t
    t, idx_fast = _time(lambda: scan(root, workers=args.workers, verify=False), args.repeat)
    rows.append(("augbal scan, header only (verify=False)", t, len(idx_fast)))

    near_rows = []
    if not args.no_near:
        t, report = _time(lambda: find_duplicates(idx, near=True, workers=args.workers), args.repeat)
        near_rows.append(("find_duplicates(near=True): phash every file + group", t, report))
        t, idx_near = _time(lambda: scan(root, workers=args.workers, near_duplicates=True), args.repeat)
        near_rows.append(("scan(near_duplicates=True): one pass, phash while decoded", t, idx_near))
        t, report2 = _time(lambda: find_duplicates(idx_near, near=True), args.repeat)
        near_rows.append(("find_duplicates on stored phashes (grouping only)", t, report2))

    print(f"root: {root}   files: {n}   machine: {platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared, noisy), Python {platform.python_version()}")
    print()
    print("| run | seconds | files/s | vs baseline (ImageFolder + hash) |")
    print("|---|---:|---:|---:|")
    for name, seconds, count in rows:
        print(f"| {name} | {seconds:.2f} | {count / seconds:,.0f} | {base_s / seconds:.2f}x |")
    print()
    print(f"scan (verify, default threads) of {n} files: {scan_s:.2f} s (goal: <= 20 s)")
    if near_rows:
        print()
        print("| near-duplicate pass | seconds | exact groups | near groups | cross-class groups |")
        print("|---|---:|---:|---:|---:|")
        for name, seconds, obj in near_rows:
            summary = obj.meta["duplicates"] if hasattr(obj, "meta") else obj.summary()
            print(f"| {name} | {seconds:.2f} | {summary['exact_groups']} | {summary['near_groups']} | "
                  f"{summary['cross_class_groups']} |")


if __name__ == "__main__":
    main()
