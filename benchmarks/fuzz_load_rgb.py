"""Fuzz ``load_rgb`` with seeded mutations of small JPEG/PNG/WebP/BMP/TIFF/GIF/CMYK files.

Every outcome must be an ``(H, W, 3)`` ``uint8`` array or an ``ImageLoadError`` naming the
file. The script reports the outcomes per kind, every *escape* (any other exception, or
an error that does not name the file) by exception type, and the Pillow warnings that
leaked out of ``load_rgb``; the first few escaping files are kept in ``--keep``. Every
mutated JPEG that the plain-JPEG path decodes is also decoded by Pillow's full path: a
refusal there or other pixels is an escape (``plain-jpeg mismatch``).

The seed images and the mutations are those of ``tests/data/test_fuzz_load.py`` (the
bounded version that runs in ``make test``).

Usage:
    python benchmarks/fuzz_load_rgb.py --mutations 300000 --workers 2
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
_FUZZ = _HERE.parent / "tests" / "data" / "test_fuzz_load.py"


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("_augbal_fuzz_load", _FUZZ)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _work(job: tuple[int, int, int, int, str | None]) -> dict:
    seed, chunk, count, keep_max, keep_dir = job
    fuzz = _fuzz_module()
    images = fuzz.seed_images()
    names = sorted(images)
    outcomes: collections.Counter = collections.Counter()
    escapes: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    leaked: collections.Counter = collections.Counter()
    from augbal.data._io import decode, open_image, plain_jpeg, to_rgb

    plain: collections.Counter = collections.Counter()
    rng = np.random.default_rng([seed, chunk])
    folder = tempfile.mkdtemp(prefix="fuzz-load-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    kept = 0
    try:
        for i in range(count):
            name = names[i % len(names)]
            data = fuzz.mutate(images[name], rng)
            path = os.path.join(folder, f"{chunk}-{i}-{name}")
            with open(path, "wb") as fh:
                fh.write(data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcomes[fuzz.check_one(path)] += 1
                except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                    key = f"{type(exc).__name__} ({name.rsplit('.', 1)[1]})"
                    escapes[key] += 1
                    outcomes["ESCAPE"] += 1
                    examples.setdefault(key, f"{type(exc).__name__}: {str(exc)[:160]}")
                    if keep_dir is not None and kept < keep_max:
                        shutil.copy(path, os.path.join(keep_dir, os.path.basename(path)))
                        kept += 1
            for w in caught:
                leaked[f"{w.category.__name__}: {str(w.message)[:60]}"] += 1
            im = plain_jpeg(data, max_pixels=None, formats=None)
            if im is not None:
                plain["decoded by the plain-JPEG path"] += 1
                try:
                    with open(path, "rb") as fh, open_image(fh, path, max_pixels=None, formats=None) as full:
                        decode(full, path)
                        same = np.array_equal(np.array(im.convert("RGB")), to_rgb(full))
                except Exception:  # noqa: BLE001 - the full path refused what the plain path decoded
                    same = False
                if not same:
                    escapes[f"plain-jpeg mismatch ({name})"] += 1
                    examples.setdefault(f"plain-jpeg mismatch ({name})", "the full path refused it or decoded other pixels")
            os.unlink(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"outcomes": outcomes, "escapes": escapes, "examples": examples, "leaked": leaked, "plain": plain}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=300_000, help="mutated files to load (default 300000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=5_000, help="mutations per job")
    parser.add_argument("--keep", type=Path, default=None, help="copy up to 20 escaping files here")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    jobs, left, chunk = [], args.mutations, 0
    while left > 0:
        n = min(args.chunk, left)
        jobs.append((args.seed, chunk, n, 20, None if args.keep is None else str(args.keep)))
        left -= n
        chunk += 1
    import augbal
    import PIL

    print(f"augbal {augbal.__file__}, Pillow {PIL.__version__}, {args.mutations} mutations, {args.workers} workers")
    start = time.perf_counter()
    total = {k: collections.Counter() for k in ("outcomes", "escapes", "leaked", "plain")}
    examples: dict[str, str] = {}
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for part in pool.imap_unordered(_work, jobs):
            for k in total:
                total[k].update(part[k])
            for k, v in part["examples"].items():
                examples.setdefault(k, v)
    wall = time.perf_counter() - start
    print(f"wall time {wall:.1f} s ({args.mutations / wall:,.0f} files/s)")
    print("outcomes:", ", ".join(f"{k} {v}" for k, v in sorted(total["outcomes"].items())))
    print(f"plain-JPEG path: {sum(total['plain'].values())} mutated files decoded by it, each compared with the full path")
    print(f"escapes: {sum(total['escapes'].values())}")
    for k, v in total["escapes"].most_common():
        print(f"  {v:7d}  {k}  e.g. {examples[k]}")
    print(f"Pillow warnings leaked: {sum(total['leaked'].values())}")
    for k, v in total["leaked"].most_common(10):
        print(f"  {v:7d}  {k}")
    return 1 if total["escapes"] else 0


if __name__ == "__main__":
    sys.exit(main())
