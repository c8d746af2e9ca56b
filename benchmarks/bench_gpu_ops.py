"""Images/s of augbal's batch ops (flip + pad-crop + resize + normalise) on the device,
against the same ops done per sample with torchvision v2 on CPU tensors, in the same run.

    python benchmarks/bench_gpu_ops.py                 # cuda when available, else cpu
    python benchmarks/bench_gpu_ops.py --device cpu --threads 1
    python benchmarks/bench_gpu_ops.py --device cuda   # exits 0 with a message when there is no GPU

Inputs are random uint8 N,C,H,W batches already on the device (as after a DataLoader
and ``.to(device)``); host-to-device copies are not timed. Cases are ``IN:OUT`` pixel
sizes: pad-crop pads by IN/8 and crops back to IN, then resize goes to OUT (a same-size
resize is a no-op in both pipelines). Prints a markdown table; the ratio column is
batch-op images/s over the per-sample torchvision images/s of the same case.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import torch
import torchvision
from torchvision.transforms import v2

from augbal.augment import BatchCompose, BatchHorizontalFlip, BatchNormalize, BatchPadCrop, BatchResize

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def batch_pipeline(size_in: int, size_out: int, seed: int = 0) -> BatchCompose:
    return BatchCompose(
        [
            BatchHorizontalFlip(p=0.5),
            BatchPadCrop(padding=size_in // 8),
            BatchResize(size=size_out),
            BatchNormalize(mean=MEAN, std=STD),
        ],
        seed=seed,
    )


def torchvision_pipeline(size_in: int, size_out: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomCrop(size_in, padding=size_in // 8),
            v2.Resize((size_out, size_out), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


def timed(fn: Callable[[], object], *, iters: int, warmup: int, sync: Callable[[], None]) -> float:
    """Median seconds per call over ``iters`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--batch", type=int, default=256, help="images per batch (default 256)")
    parser.add_argument("--cases", default="32:64,224:224,256:224", help="IN:OUT sizes, comma separated")
    parser.add_argument("--iters", type=int, default=20, help="timed batches for the batch ops")
    parser.add_argument("--baseline-iters", type=int, default=3, help="timed batches for the per-sample baseline")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine; skipping the GPU benchmark (use --device cpu).")
        return 0
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()

    print(
        f"device: {device} ({name}); torch {torch.__version__}; torchvision {torchvision.__version__}; "
        f"CPU threads {torch.get_num_threads()}; batch {args.batch}"
    )
    print()
    print("| case | pipeline | where | images/s | ratio vs per-sample |")
    print("|---|---|---|---:|---:|")
    for case in args.cases.split(","):
        size_in, size_out = (int(s) for s in case.split(":"))
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.batch, 3, size_in, size_in), dtype=torch.uint8, generator=gen)

        tv = torchvision_pipeline(size_in, size_out)
        torch.manual_seed(0)
        base_s = timed(
            lambda: torch.stack([tv(img) for img in images]),
            iters=args.baseline_iters,
            warmup=1,
            sync=lambda: None,
        )
        base_ips = args.batch / base_s

        ops = batch_pipeline(size_in, size_out)
        on_device = images.to(device)
        ops_s = timed(lambda: ops(on_device), iters=args.iters, warmup=3, sync=sync)
        ops_ips = args.batch / ops_s

        label = f"{size_in}->{size_out}"
        print(f"| {label} | torchvision v2, per sample | cpu | {base_ips:,.0f} | 1.00x |")
        print(f"| {label} | augbal BatchCompose | {device.type} | {ops_ips:,.0f} | {ops_ips / base_ips:.2f}x |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
