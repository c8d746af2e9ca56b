"""``load_rgb`` on small JPEGs: the plain-JPEG path against Pillow's full path (open, load, convert).

Reads the CIFAR-10 train JPEGs (32x32) of ``../shared/datasets/cifar10-jpg.tar.gz`` (extracted
once under ``--work``), checks that both paths give the same pixels for every file timed, then
times ``--rounds`` interleaved rounds of each over the same files (best round reported, and the
ratio within each round: the machine is shared).

    python benchmarks/bench_load_rgb.py --files 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_build import DEFAULT_TAR, DEFAULT_WORK, extract_train  # this folder is on sys.path

from augbal.data import load_rgb
from augbal.data._io import decode, open_image, to_rgb


def full_path(path: str) -> np.ndarray:
    """What ``load_rgb`` did before the plain-JPEG path: Pillow parses the header, decodes, converts."""
    with open(path, "rb") as fh, open_image(fh, path, max_pixels=None, formats=None) as im:
        decode(im, path)
        return to_rgb(im)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    train = extract_train(DEFAULT_TAR, args.work)
    files = sorted(str(p) for p in train.glob("*/*.jpg"))[:: max(1, 50_000 // args.files)][: args.files]
    same = sum(np.array_equal(load_rgb(p, max_pixels=None, formats=None), full_path(p)) for p in files)
    print(f"{len(files)} CIFAR-10 JPEGs (32x32); identical pixels: {same} of {len(files)}\n")
    print("| round | load_rgb us/file | Pillow full path us/file | speed-up |")
    print("|---|---:|---:|---:|")
    ratios = []
    for r in range(args.rounds):
        times = []
        for fn in (lambda p: load_rgb(p, max_pixels=None, formats=None), full_path):
            start = time.perf_counter()
            for p in files:
                fn(p)
            times.append((time.perf_counter() - start) / len(files) * 1e6)
        ratios.append(times[1] / times[0])
        print(f"| {r + 1} | {times[0]:.1f} | {times[1]:.1f} | {ratios[-1]:.2f}x |")
    print(f"| median | | | **{float(np.median(ratios)):.2f}x** |")


if __name__ == "__main__":
    main()
