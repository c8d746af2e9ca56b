"""Benchmark: ``augbal build-dataset`` on CIFAR-10-LT (ratio 100), balanced with the ``light`` policy.

From ``../shared/datasets/cifar10-jpg.tar.gz`` (see its README) it extracts the train
images once, takes the CIFAR-10-LT subset (``augbal.data.skew``: n_i = floor(n_max *
100^(-i/9)), 12,406 images for n_max 5000, seed 0) into a source folder of hard links,
then measures, in one run (issue 9, Performance):

1. images written per second by ``build_dataset(target="auto", policy="light")`` with
   1 and 2 workers (the write phase: ``run_local``, worker start-up included; about
   37,600 augmented JPEG copies at quality 95 for n_max 5000), and the two outputs
   compared byte for byte;
2. a plain single-process Pillow loop doing the same work, the same dataset: copy the
   originals (``shutil.copyfile``, as the build's write phase does), then for each
   augmented copy open the source, convert to RGB, a random resized crop (area 0.65..1,
   aspect 3/4..4/3, bilinear, back to the source's shorter side), a horizontal flip with
   p=0.5, save as JPEG quality 95 (a plain ``open``/``save``, no temp file);
3. peak RSS of a ``--workers 1`` build (one process does everything) with 50,000 outputs
   (n_max 5000) and with 5,000 outputs (n_max 500), each in a fresh subprocess, measured
   from after its imports (Linux's VmHWM, reset through /proc/self/clear_refs).

Bars: 2 workers >= 1.8x one; one worker >= 1.5x the plain loop; RSS(50k) <= 1.2x RSS(5k).

On a shared VM the speed of a core drifts by +-30 % within seconds, so one run of each case
gives ratios that move by +-0.3. The cases are therefore timed in ``--rounds`` rounds, in
an order rotated each round (round r starts with case r mod 3), each case in a new Python
process (as a user's command: the 1-worker build pays albumentations' first calls in its
write phase, the 2-worker build starts its fork server when it starts), and the ratios are
taken within each round; the table gives every round and the median. A control case runs
two 1-worker builds at once, each in its own process: 2 x (one alone) / (two at once) is what
two processes doing this work get from this machine, the most "2 workers / 1" can reach
here (on a shared VM the two vCPUs scale this work by well under 2x). (Before 2026-12-03 each
case ran once in the benchmark's own process, the plain loop after the builds: a process
that has scanned a folder runs the plain loop 5-15 % slower, which flattered the builds.)

    python benchmarks/bench_build.py --rounds 5 --no-rss   # the speed figures
    python benchmarks/bench_build.py --rounds 1            # one round and the peak RSS
    python benchmarks/bench_build.py --n-max 1000 --no-rss   # a quick subset (~7,500 copies)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TAR = ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz"
# On the shared VM this was written on, creating a file on its ext4 disk cost 0.76-0.94 ms
# (journal contention), for the build and the plain loop alike; a tmpfs keeps the figures
# about the work. Pass --work on a disk to measure that instead.
DEFAULT_WORK = Path("/dev/shm/augbal-bench-build") if Path("/dev/shm").is_dir() else Path("/tmp/augbal-bench-build")


def extract_train(tar_path: Path, work: Path) -> Path:
    """``work/cifar/train/<class>/NNNN.jpg`` (extracted once)."""
    train = work / "cifar" / "train"
    if (train / ".complete").exists():
        return train
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lstrip("./").startswith("train/")]
        tar.extractall(work / "cifar", members=members, filter="data")
    (train / ".complete").write_text("ok")
    return train


def long_tail_source(train: Path, work: Path, n_max: int) -> Path:
    """``work/lt-<n_max>/<class>/``: hard links to the CIFAR-10-LT ratio-100 subset (seed 0)."""
    from augbal.data import ImageIndex, skew

    dest = work / f"lt-{n_max}"
    if (dest / ".complete").exists():
        return dest
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((train / name).iterdir()):
            paths.append(str(p))
            labels.append(label)
    index = ImageIndex.from_arrays(paths, labels, classes)
    kept = skew(index, ratio=100, n_max=n_max, seed=0)
    if dest.exists():
        shutil.rmtree(dest)
    for path, label in zip(kept.paths.tolist(), kept.labels.tolist()):
        (dest / classes[label]).mkdir(parents=True, exist_ok=True)
        os.link(path, dest / classes[label] / os.path.basename(path))
    (dest / ".complete").write_text(json.dumps(kept.class_counts().tolist()))
    return dest


def _fresh(function: str, *args: object) -> list[str]:
    """The command that runs ``function(*args)`` of this module in a new Python process and prints
    its JSON result (as a user's command runs: nothing imported, warmed or cached by an earlier case)."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_build; "
            f"print(json.dumps(bench_build.{function}(*sys.argv[1:])))")
    return [sys.executable, "-c", code, *map(str, args)]


#: The environment of every subprocess: the checkout's ``src`` first on the path.
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def in_fresh_process(function: str, *args: object) -> dict:
    """``function(*args)`` of this module run in a new Python process, its JSON result."""
    done = subprocess.run(_fresh(function, *args), env=ENV, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def two_at_once(source: Path, work: Path) -> dict:
    """Two 1-worker builds of ``source`` started together, each in a new process: the machine's own
    scaling for this work on two processes (what "2 workers / 1" can reach here at best)."""
    procs = [subprocess.Popen(_fresh("timed_build", source, work / f"out-pair{i}", 1), env=ENV,
                              stdout=subprocess.PIPE, text=True) for i in (1, 2)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"write_s": max(r["write_s"] for r in results), "each_s": [r["write_s"] for r in results]}


def timed_build(source: Path, out: Path, workers: int) -> dict:
    """One build; the seconds spent in ``run_local`` (the write phase) and in total."""
    workers = int(workers)
    import augbal.build._build as b

    real = b.run_local
    spent = {}

    def run_local(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent["write"] = time.perf_counter() - start

    b.run_local = run_local
    try:
        start = time.perf_counter()
        s = b.build_dataset(source, out, split=(1.0, 0.0, 0.0), policy="light", workers=workers, seed=0,
                            overwrite=True)
        total = time.perf_counter() - start
    finally:
        b.run_local = real
    augmented = sum(r["augmented"] for r in s.rows)
    return {"workers": workers, "augmented": augmented, "outputs": s.written, "write_s": spent["write"],
            "total_s": total, "rate": augmented / spent["write"]}


def _crop_box(rng: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
    """torchvision/albumentations RandomResizedCrop box: area 0.65..1, log-uniform aspect 3/4..4/3."""
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(0.65, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x, y, x + cw, y + ch
    return 0, 0, w, h


def plain_loop(manifest: Path, out: Path) -> dict:
    """The same dataset as the build, by a plain single-process Pillow loop: the originals
    copied (``shutil.copyfile``), the augmented copies made one by one."""
    from PIL import Image

    manifest, out = Path(manifest), Path(out)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    originals = [r for r in rows if r["repeat"] == 0]
    copies = [r for r in rows if r["repeat"] > 0]
    if out.exists():
        shutil.rmtree(out)
    rng = random.Random(0)
    start = time.perf_counter()
    for r in originals:
        target = out / r["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r["source_path"], target)
    for r in copies:
        target = out / r["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(r["source_path"]) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            im = im.resize((side, side), Image.BILINEAR, box=_crop_box(rng, w, h))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            im.save(target, format="JPEG", quality=95)
    seconds = time.perf_counter() - start
    return {"augmented": len(copies), "write_s": seconds, "rate": len(copies) / seconds}


def peak_rss(source: Path, out: Path) -> dict:
    """Peak RSS (MiB) of a fresh ``--workers 1`` build process during the build, and its output count.

    The imports (torch, albumentations, ...) are done first, then the peak-RSS counter is
    reset (``/proc/self/clear_refs``), so the figure is the build's own peak, not the
    transient peak of loading the libraries (reported beside it).
    """
    code = (
        "import json, sys\n"
        "import augbal.augment, augbal.build, augbal.data, augbal.sampling\n"
        "def hwm():\n"
        "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')) / 1024\n"
        "imported = hwm()\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "from augbal.build import build_dataset\n"
        "s = build_dataset(sys.argv[1], sys.argv[2], split=(1.0, 0.0, 0.0), policy='light', workers=1,"
        " overwrite=True)\n"
        "print(json.dumps({'outputs': s.written, 'rss_mib': hwm(), 'import_peak_mib': imported}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(source), str(out)], env=ENV, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two build outputs hold the same files with the same bytes."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tar", type=Path, default=DEFAULT_TAR, help="cifar10-jpg.tar.gz")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="scratch folder (default: on /dev/shm where there is one, see below)")
    parser.add_argument("--n-max", type=int, default=5000, help="head-class images (5000: CIFAR-10-LT, 12,406)")
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Pillow loop")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS builds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case, in rotated order")
    parser.add_argument("--no-pair", action="store_true",
                        help="skip the control: two 1-worker builds at once (the machine's 2-process scaling)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    train = extract_train(args.tar, args.work)
    source = long_tail_source(train, args.work, args.n_max)
    n_source = sum(json.loads((source / ".complete").read_text()))
    worker_counts = [int(x) for x in args.workers.split(",")]
    cases = [f"w{w}" for w in worker_counts] + ([] if args.no_plain else ["plain"])
    cases += [] if args.no_pair or 1 not in worker_counts or len(worker_counts) < 2 else ["pair"]
    rounds: list[dict] = []
    identical = None
    for r in range(args.rounds):
        times: dict = {}
        order = cases[r % len(cases):] + cases[:r % len(cases)]
        for case in order:
            if case == "pair":
                result = two_at_once(source, args.work)
            elif case == "plain":
                manifest = args.work / f"out-w{min(worker_counts)}" / "manifest.jsonl"
                if not manifest.exists():  # the plain loop writes the dataset of a build's manifest
                    in_fresh_process("timed_build", source, manifest.parent, min(worker_counts))
                result = in_fresh_process("plain_loop", manifest, args.work / "out-plain")
            else:
                result = in_fresh_process("timed_build", source, args.work / f"out-{case}", case[1:])
            times[case] = result
            print(json.dumps({"round": r + 1, "case": case, **result}), flush=True)
        if identical is None and len(worker_counts) > 1:
            identical = same_bytes(args.work / f"out-w{min(worker_counts)}", args.work / f"out-w{max(worker_counts)}")
        rounds.append(times)
    rss = {}
    if not args.no_rss:
        for n_max in (500, 5000):
            rss[n_max] = peak_rss(long_tail_source(train, args.work, n_max), args.work / f"out-rss-{n_max}")
            print(json.dumps({"rss": n_max, **rss[n_max]}), flush=True)
    load_after = os.getloadavg()
    report(rounds, worker_counts, n_source, args, load_before, load_after, identical, rss)


def report(rounds, worker_counts, n_source, args, load_before, load_after, identical, rss) -> None:
    """The markdown tables: write phase per round and case, the ratios within each round, medians."""
    one, many = min(worker_counts), max(worker_counts)
    augmented = rounds[0][f"w{one}"]["augmented"]
    print()
    print(f"CIFAR-10-LT ratio 100, n_max {args.n_max}: {n_source} source images, {augmented:,} augmented "
          f"copies written (policy light, JPEG q95) beside the originals; work folder {args.work}; "
          f"{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print()
    plain = "plain" in rounds[0]
    pair = "pair" in rounds[0]
    head = ["round"] + [f"{w} worker(s) s" for w in worker_counts] + (["plain loop s"] if plain else [])
    head += [f"{many} workers / {one}"] if many != one else []
    head += ["two 1-worker builds at once s", "machine: 2 x alone / at once", f"{many} workers / machine"] if pair else []
    head += [f"{one} worker / plain loop"] if plain else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    ratios: dict = {"par": [], "plain": [], "machine": [], "of_machine": []}
    for r, t in enumerate(rounds, 1):
        cells = [str(r)] + [f"{t[f'w{w}']['write_s']:.2f}" for w in worker_counts]
        cells += [f"{t['plain']['write_s']:.2f}"] if plain else []
        if many != one:
            ratios["par"].append(t[f"w{one}"]["write_s"] / t[f"w{many}"]["write_s"])
            cells += [f"{ratios['par'][-1]:.2f}x"]
        if pair:
            ratios["machine"].append(2 * t["w1"]["write_s"] / t["pair"]["write_s"])
            ratios["of_machine"].append(ratios["par"][-1] / ratios["machine"][-1])
            cells += [f"{t['pair']['write_s']:.2f}", f"{ratios['machine'][-1]:.2f}x", f"{ratios['of_machine'][-1]:.2f}"]
        if plain:
            ratios["plain"].append(t["plain"]["write_s"] / t[f"w{one}"]["write_s"])
            cells += [f"{ratios['plain'][-1]:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if len(rounds) > 1:
        cells = ["median"] + [f"{statistics.median(t[f'w{w}']['write_s'] for t in rounds):.2f}" for w in worker_counts]
        cells += [f"{statistics.median(t['plain']['write_s'] for t in rounds):.2f}"] if plain else []
        cells += [f"**{statistics.median(ratios['par']):.2f}x**"] if many != one else []
        cells += [f"{statistics.median(t['pair']['write_s'] for t in rounds):.2f}",
                  f"{statistics.median(ratios['machine']):.2f}x", f"{statistics.median(ratios['of_machine']):.2f}"] \
            if pair else []
        cells += [f"**{statistics.median(ratios['plain']):.2f}x**"] if plain else []
        print("| " + " | ".join(cells) + " |")
    ends = ", ".join(f"{w} worker(s) {statistics.median(t[f'w{w}']['total_s'] for t in rounds):.2f} s"
                     for w in worker_counts)
    print(f"\nend to end (scan, plan, write; what a user waits for), median: {ends}")
    best = {c: min(t[c]["write_s"] for t in rounds) for c in rounds[0] if c != "pair"}
    print("\nfastest of the rounds, images/s: " + ", ".join(
        f"{c} {augmented / s:,.0f}" for c, s in best.items()))
    if identical is not None:
        print(f"\noutputs of {one} and {many} workers byte-identical: {identical}")
    if rss:
        small, large = rss[500], rss[5000]
        print(f"\npeak RSS of the build, --workers 1: {small['outputs']:,} outputs {small['rss_mib']:.0f} MiB, "
              f"{large['outputs']:,} outputs {large['rss_mib']:.0f} MiB ({large['rss_mib'] / small['rss_mib']:.2f}x); "
              f"after the imports alone {small['import_peak_mib']:.0f} / {large['import_peak_mib']:.0f} MiB")

if __name__ == "__main__":
    main()
