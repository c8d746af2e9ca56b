"""Per-component cost of one ``ClassAwareSampler.batches(256)`` epoch (the batch-path benchmark's case).

Times, best of ``--repeats`` in one process: construction, the class index (``_fit``),
the quotas, the draw streams (``_streams``), the class order (``_class_blocks``, drawn
lazily), the plan (``_make_plan``: streams, with the class order drawn ahead on a second
thread when the epoch allows it), the block fill (``_fill``), and the whole first and later
epochs as ``bench_batch_path.py`` iterates them (labels: ``bench_batch_path.skewed_labels``,
int64, shuffled).

    python benchmarks/profile_epoch.py --n 1000000 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_batch_path import skewed_labels  # noqa: E402

from augbal.sampling import ClassAwareSampler  # noqa: E402
from augbal.sampling._base import _BLOCK, _DEAL, _STREAMS  # noqa: E402


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, b, k = args.n, args.batch, args.repeats
    labels = skewed_labels(n)

    def build() -> ClassAwareSampler:
        return ClassAwareSampler(labels, weighting="balanced", num_samples=n, seed=0)

    def fitted() -> ClassAwareSampler:
        s = build()
        s._fit()
        return s

    s = fitted()
    q, final = s._epoch_quotas(0)
    plan = s._plan(0)

    ahead = plan.blocks

    def blocks() -> None:  # drawn lazily, as without a second CPU or for epochs over _AHEAD_MAX
        plan.blocks = None
        for _ in s._class_blocks(plan, 0, _BLOCK):
            pass
        plan.blocks = ahead

    def make_plan() -> None:
        s._make_plan(0)

    cls_blocks = [(blk.copy(), before.copy(), cnt) for _, blk, before, cnt in s._class_blocks(plan, 0, _BLOCK)]

    def fill() -> None:
        for blk, before, cnt in cls_blocks:
            s._fill(plan, blk, before.copy(), False, np.int64, cnt)  # as batch mode fills

    def first_epoch() -> None:
        t = build()
        for batch in t.batches(b):
            len(batch)

    later = build()
    list(later.batches(b))
    epoch = [0]

    def later_epoch() -> None:
        epoch[0] += 1
        later.set_epoch(epoch[0])
        for batch in later.batches(b):
            len(batch)

    def quotas() -> None:
        s._quota_cache = None
        s._epoch_quotas(0)

    rows = [
        ("construction", _best(build, k)),
        ("class index (_fit)", _best(lambda: fitted(), k) - _best(build, k)),
        ("quotas (_epoch_quotas)", _best(quotas, k)),
        ("draw streams (_streams)", _best(lambda: s._streams(0, q, s._rng(0, _STREAMS)), k)),
        ("deal (_class_sequence)", _best(lambda: s._class_sequence(0, final, s._rng(0, _DEAL)), k)),
        ("class order (_class_blocks)", _best(blocks, k)),
        ("plan (_make_plan)", _best(make_plan, k)),
        ("block fill (_fill)", _best(fill, k)),
        ("first epoch, incl. build", _best(first_epoch, k)),
        ("later epoch", _best(later_epoch, k)),
    ]
    print(f"N = {n:,}, B = {b}, best of {k}, ms")
    for name, ms in rows:
        print(f"{name:32s} {ms:8.2f}")


if __name__ == "__main__":
    main()
