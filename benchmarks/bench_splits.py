"""Cost of augbal's splits, skews and ImageDataset reads on CIFAR-10 (50,000 train images).

Each augbal operation is timed against a plain baseline in the same run, interleaved
round-robin over ``--rounds`` (the machine is shared and noisy); medians are reported:

* ``split(ratios)`` vs two stratified scikit-learn ``train_test_split`` calls on the labels
  (what a user would write without groups); ``split`` adds duplicate-group handling,
  the 1-2-image rule and the one-train-image guarantee. Also with 5% of the images in
  duplicate groups of 2-4.
* ``split(counts)`` and ``skew`` (CIFAR-10-LT, ratio 100) vs a per-class seeded numpy
  permutation (the hand-written equivalent).
* seedlike-3 (select 3 classes, train 4500/450/45, val 450/90/18 from the rest).
* ``ImageDataset(index)[i]`` (``augbal.data.load_rgb``, and with the same PIL loader) vs
  torchvision ``ImageFolder``'s PIL loader + ``np.asarray``, over ``--images`` JPEGs, one
  process, files in page cache; and the dataset's own per-item cost with a no-op loader.

The index is built from the file listing (``ImageIndex.from_arrays``), so the scan is not
part of the figures. Prints a markdown table.

    python benchmarks/bench_splits.py --root /tmp/cifar --rounds 5 --images 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from augbal._draw import Draw
from augbal.data import ImageDataset, ImageIndex, select_classes, skew, split


def listing_index(root: str) -> ImageIndex:
    classes = sorted(d for d in os.listdir(root) if not d.startswith("."))
    paths, labels = [], []
    for k, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(root, name)))
        paths += [os.path.join(root, name, f) for f in files]
        labels += [k] * len(files)
    return ImageIndex.from_arrays(paths, labels, classes)


def with_groups(index: ImageIndex, fraction: float, seed: int = 0) -> ImageIndex:
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    groups = np.full(len(index), -1, dtype=np.int64)
    chosen = rng.permutation(len(index))[: int(fraction * len(index))]
    start, g = 0, 0
    while start < chosen.size:
        size = int(rng.integers(2, 5))
        groups[chosen[start : start + size]] = g
        start, g = start + size, g + 1
    return replace(index, groups=groups)


def sklearn_two_stage(labels: np.ndarray, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(labels.shape[0])
    rest, test = train_test_split(idx, test_size=0.1, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=1 / 9, stratify=labels[rest], random_state=seed + 1)
    return train, val, test


def numpy_per_class(labels: np.ndarray, counts, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(counts):
        members = np.flatnonzero(labels == k)
        out.append(members[rng.permutation(members.size)[:n]])
    return np.sort(np.concatenate(out))


def numpy_seedlike(index: ImageIndex, seed: int):
    rng = np.random.default_rng(seed)
    train, val = [], []
    for name, n_train, n_val in (("deer", 4500, 450), ("dog", 450, 90), ("cat", 45, 18)):
        members = np.flatnonzero(index.labels == index.classes.index(name))
        order = members[rng.permutation(members.size)]
        train.append(order[:n_train])
        val.append(order[n_train : n_train + n_val])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def seedlike(index: ImageIndex, seed: int):
    pool = select_classes(index, ["deer", "dog", "cat"])
    train = skew(pool, ratio=100, n_max=4500, seed=seed)
    val = skew(pool, ratio=25, n_max=450, seed=seed, exclude=train)
    return train, val


def timed(fn, rounds: int) -> float:
    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/tmp/cifar", help="CIFAR-10 JPEG root with train/<class>/*.jpg")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions per operation (median reported)")
    parser.add_argument("--images", type=int, default=2000, help="images read per ImageDataset round")
    args = parser.parse_args()

    index = listing_index(os.path.join(args.root, "train"))
    grouped = with_groups(index, 0.05)
    labels = index.labels
    lt = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    split(index, seed=0)  # warm-up: imports scikit-learn

    rows = []
    pairs = [
        ("split(ratios=(0.8, 0.1, 0.1))", lambda r: split(index, seed=r), "sklearn train_test_split x2", lambda r: sklearn_two_stage(labels, r)),
        ("split(ratios), 5% in duplicate groups", lambda r: split(grouped, seed=r), "sklearn train_test_split x2", lambda r: sklearn_two_stage(labels, r)),
        ("split(counts=(4000, 500, 500))", lambda r: split(index, counts=(4000, 500, 500), seed=r), "numpy per-class permutation", lambda r: numpy_per_class(labels, [5000] * 10, r)),
        ("skew(ratio=100) (CIFAR-10-LT)", lambda r: skew(index, ratio=100, seed=r), "numpy per-class permutation", lambda r: numpy_per_class(labels, lt, r)),
        ("seedlike-3 (train + val from rest)", lambda r: seedlike(index, r), "numpy per-class permutation, 2 slices", lambda r: numpy_seedlike(index, r)),
    ]
    for name, fn, base_name, base in pairs:
        ours, theirs = [], []
        for r in range(args.rounds):  # interleaved
            ours.append(timed(lambda _: fn(r), 1))
            theirs.append(timed(lambda _: base(r), 1))
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append((name, f"{a * 1e3:.1f} ms", base_name, f"{b * 1e3:.1f} ms", f"{a / b:.2f}x"))

    from PIL import Image

    def pil_loader(path):  # torchvision.datasets.folder.pil_loader, then to numpy
        with open(path, "rb") as fh:
            return np.asarray(Image.open(fh).convert("RGB"))

    pick = np.random.default_rng(0).permutation(len(index))[: args.images]
    ds = ImageDataset(index.subset(pick))
    for p in ds.index.paths:  # page cache
        with open(p, "rb") as fh:
            fh.read()
    same_loader = ImageDataset(ds.index, loader=pil_loader)
    paths = ds.index.paths.tolist()
    variants = {
        "ours": lambda: [ds[i] for i in range(len(ds))],
        "theirs": lambda: [pil_loader(p) for p in paths],
        "same": lambda: [same_loader[i] for i in range(len(ds))],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):  # interleaved, and the order rotates so no variant always runs first
        for name in names[r % 3 :] + names[: r % 3]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    a, b, o = (statistics.median(times[name]) for name in ("ours", "theirs", "same"))
    baseline = "ImageFolder's PIL loader + np.asarray"
    rows.append((f"ImageDataset[i] (load_rgb) x {len(ds)}", f"{len(ds) / a:,.0f} img/s", baseline, f"{len(ds) / b:,.0f} img/s", f"{a / b:.2f}x time"))
    rows.append((f"ImageDataset[i] (same PIL loader) x {len(ds)}", f"{len(ds) / o:,.0f} img/s", baseline, f"{len(ds) / b:,.0f} img/s", f"{o / b:.2f}x time"))
    bare = ImageDataset(index, loader=str)  # no decoding: the dataset's own per-item cost
    t0 = time.perf_counter()
    for i in range(len(bare)):
        bare[Draw(i, 0, 0)]
    per_item = (time.perf_counter() - t0) / len(bare)
    rows.append((f"ImageDataset[Draw] own cost, no decoding, x {len(bare)}", f"{per_item * 1e6:.1f} us/item", baseline, f"{1e6 / (len(ds) / b):.0f} us/item", f"{per_item / (b / len(ds)):.3f}x"))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared, noisy); N = {len(index)}; "
          f"median of {args.rounds} interleaved rounds\n")
    print("| operation | augbal | baseline | baseline time | augbal / baseline |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
