"""CPU throughput of augbal's albumentations policies against torchvision pipelines, one core.

For each policy (``light``, ``medium``) and image size (32, 224; output size = input size)
it times, in the same run and interleaved round-robin (the machine is shared and noisy):

* ``augbal``: ``build_policy(name, size=s)(array, label=0, draw=Draw(i))`` on uint8 HWC
  numpy arrays (the ``ImageDataset`` call, per-draw reseeding included);
* ``tv1-PIL``: the equivalent ``torchvision.transforms`` (v1) pipeline on PIL images plus
  ``ToTensor`` + ``Normalize`` -- the usual user baseline the target refers to;
* ``tv2-PIL`` / ``tv2-tensor``: the same ops with ``torchvision.transforms.v2`` on PIL images
  and on uint8 CHW tensors (``ToDtype`` + ``Normalize``).

Decoding is excluded (images are decoded once, up front). Prints a markdown table with
images/s (median over rounds) and the augbal speed-up over each baseline.

    python benchmarks/bench_augment.py --seconds 2 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from augbal._draw import Draw  # noqa: E402
from augbal.augment import IMAGENET_MEAN, IMAGENET_STD, build_policy  # noqa: E402

SCALE = (0.65, 1.0)  # light/medium at magnitude 1: area 0.65..1, ratio 3/4..4/3
RATIO = (3 / 4, 4 / 3)


def torchvision_v1(policy: str, size: int):
    from torchvision import transforms as T

    ops = [T.RandomResizedCrop(size, scale=SCALE, ratio=RATIO, antialias=True), T.RandomHorizontalFlip()]
    if policy == "medium":
        ops += [
            T.RandomApply([T.ColorJitter(0.25, 0.25, 0.25, 0.05)], p=0.8),
            T.RandomApply([T.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1))], p=0.5),
        ]
    return T.Compose([*ops, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def torchvision_v2(policy: str, size: int, *, pil: bool):
    from torchvision.transforms import v2

    ops = [v2.RandomResizedCrop(size, scale=SCALE, ratio=RATIO, antialias=True), v2.RandomHorizontalFlip()]
    if policy == "medium":
        ops += [
            v2.RandomApply([v2.ColorJitter(0.25, 0.25, 0.25, 0.05)], p=0.8),
            v2.RandomApply([v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1))], p=0.5),
        ]
    head = [v2.ToImage()] if pil else []
    return v2.Compose([*head, *ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def make_images(size: int, count: int, image_dir: str | None, seed: int) -> list[np.ndarray]:
    """``count`` uint8 RGB arrays of ``size`` x ``size``: files from ``image_dir`` (resized), or
    smooth random images (low-frequency noise, like natural images for these ops)."""
    if image_dir:
        paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(image_dir) for f in fs if f.endswith((".jpg", ".png")))
        if not paths:
            raise SystemExit(f"no .jpg/.png files under {image_dir}")
        paths = paths[:: max(1, len(paths) // count)][:count]
        return [np.array(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p in paths]
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    return [cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small]


def time_case(fn, inputs, seconds: float) -> float:
    """Images per second of ``fn(inputs[i % n], i)`` over at least ``seconds``."""
    n, done = len(inputs), 0
    fn(inputs[0], 0)  # warm-up: lazy builds, caches
    start = time.perf_counter()
    while True:
        for _ in range(16):
            fn(inputs[done % n], done)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=["light", "medium"], choices=["light", "medium"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds; the median is reported")
    parser.add_argument("--images", type=int, default=64, help="distinct images per size")
    parser.add_argument("--image-dir", default=None, help="use these .jpg/.png files (resized) instead of synthetic images")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    cases = []
    for size in args.sizes:
        arrays = make_images(size, args.images, args.image_dir, seed=size)
        pils = [Image.fromarray(a) for a in arrays]
        tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
        for name in args.policies:
            policy = build_policy(name, size=size, seed=0)
            tv1, tv2p, tv2t = torchvision_v1(name, size), torchvision_v2(name, size, pil=True), torchvision_v2(name, size, pil=False)
            pipelines = {
                "augbal": (lambda x, i, p=policy: p(x, label=0, draw=Draw(i)), arrays),
                "tv1-PIL": (lambda x, i, t=tv1: t(x), pils),
                "tv2-PIL": (lambda x, i, t=tv2p: t(x), pils),
                "tv2-tensor": (lambda x, i, t=tv2t: t(x), tensors),
            }
            cases.append((name, size, pipelines))

    rates: dict[tuple[str, int, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, size, pipelines in cases:
            for label, (fn, inputs) in pipelines.items():
                rates.setdefault((name, size, label), []).append(time_case(fn, inputs, args.seconds))

    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus (1 thread used); "
          f"torch {torch.__version__}, cv2 {cv2.__version__}; median of {args.rounds} rounds x {args.seconds}s\n")
    print("| policy | size | pipeline | images/s | augbal speed-up |")
    print("|---|---|---|---:|---:|")
    for name, size, pipelines in cases:
        ours = statistics.median(rates[(name, size, "augbal")])
        for label in pipelines:
            rate = statistics.median(rates[(name, size, label)])
            speedup = "—" if label == "augbal" else f"{ours / rate:.2f}x"
            print(f"| {name} | {size} | {label} | {rate:,.0f} | {speedup} |")


if __name__ == "__main__":
    main()
