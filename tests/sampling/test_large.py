"""N = 50,000,000 (3x torch.multinomial's 2^24 limit) without iterating it in Python."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from augbal.sampling import ClassAwareSampler

pytestmark = pytest.mark.slow

N = 50_000_000
COUNTS = [40_000_000, 8_000_000, 1_900_000, 100_000]


def _peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:  # not Linux, or not permitted: skip the memory bound
        return False


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def test_fifty_million_samples_exact_quotas_bounded_memory():
    labels = np.repeat(np.arange(4, dtype=np.int8), COUNTS)  # a dataset's labels, 50 MB
    measure = _peak_reset()
    base = _status_bytes("VmRSS") if measure else 0

    sampler = ClassAwareSampler(labels, weighting="balanced", seed=0)
    assert len(sampler) == N
    assert sampler.quotas() == {0: N // 4, 1: N // 4, 2: N // 4, 3: N // 4}

    head = np.fromiter(itertools.islice(iter(sampler), 200_000), dtype=np.int64)
    counts = np.bincount(labels[head], minlength=4)
    assert np.all(np.abs(counts - 50_000) < 1_500), counts  # hypergeometric sd ~ 190
    minority = head[labels[head] == 3]
    assert np.unique(minority).size == minority.size  # 100k minority images: none repeats yet
    assert head.min() >= 0 and head.max() < N

    sampler.load_state_dict({"epoch": 0, "yielded": N - 1_000, "seed": 0, "draws": 2})  # resume next to the end
    tail = list(sampler)
    assert len(tail) == 1_000 and sampler.state_dict()["yielded"] == N
    if measure:  # class-sorted int32 index + int32 draw stream: ~4 + 4 bytes per sample
        assert _status_bytes("VmHWM") - base < 1_200 * 2**20
