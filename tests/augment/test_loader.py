"""DataLoader hygiene: real worker processes, seeded draws, one thread per worker."""

from __future__ import annotations

import random
import time

import cv2
import numpy as np
import pytest
import torch

from augbal.augment._loader import default_num_workers, make_loader, seed_worker

_USER_INIT_RAN = False


def _user_init(worker_id: int) -> None:
    global _USER_INIT_RAN
    _USER_INIT_RAN = True


class _Draws(torch.utils.data.Dataset):
    """Each item reports the random draws and thread settings seen inside the worker."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int):
        info = torch.utils.data.get_worker_info()
        return {
            "index": i,
            "numpy": float(np.random.rand()),
            "random": random.random(),
            "torch": float(torch.rand(())),
            "cv2_threads": cv2.getNumThreads(),
            "torch_threads": torch.get_num_threads(),
            "worker": -1 if info is None else info.id,
            "worker_seed": -1 if info is None else info.seed,
            "user_init": _USER_INIT_RAN,
        }


def _epoch(seed: int, **kwargs):
    loader = make_loader(_Draws(), batch_size=4, shuffle=True, num_workers=2, seed=seed, **kwargs)
    return [{k: v.tolist() for k, v in b.items()} for b in loader]


def test_same_seed_same_batches_including_worker_draws():
    first, again = _epoch(7), _epoch(7)
    assert first == again
    assert sorted(i for b in first for i in b["index"]) == list(range(16))
    assert {w for b in first for w in b["worker"]} == {0, 1}


def test_different_seeds_differ_in_order_and_in_worker_draws():
    a, b = _epoch(7), _epoch(8)
    assert [x["index"] for x in a] != [x["index"] for x in b]
    for key in ("numpy", "random", "torch"):
        assert [x[key] for x in a] != [x[key] for x in b]


def test_workers_do_not_share_a_stream():
    batches = _epoch(3)
    # the first item of batch 0 (worker 0) and of batch 1 (worker 1) are each worker's first draw
    for key in ("numpy", "random", "torch"):
        assert batches[0][key][0] != batches[1][key][0]


def test_one_opencv_and_torch_thread_inside_workers_and_user_init_runs():
    batches = _epoch(0, worker_init_fn=_user_init)
    assert {t for b in batches for t in b["cv2_threads"]} == {1}
    assert {t for b in batches for t in b["torch_threads"]} == {1}
    assert all(flag for b in batches for flag in b["user_init"])
    assert not _USER_INIT_RAN  # the main process is left alone


@pytest.mark.timeout(60)
def test_workers_start_after_the_parent_used_the_opencv_thread_pool():
    # regression: cv2.setNumThreads(1) in a forked worker deadlocks once the parent has
    # run OpenCV on its thread pool (as the albumentations policies do)
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for _ in range(3):
        cv2.GaussianBlur(image, (7, 7), 0)
        cv2.resize(image, (300, 300))
    time.sleep(0.1)  # let the pool's threads go idle, the state in which the old code hung
    batches = _epoch(0)
    assert {t for b in batches for t in b["cv2_threads"]} == {1}


def test_numpy_and_random_are_seeded_from_the_worker_seed():
    batches = _epoch(5, persistent_workers=False)
    for b in batches[:2]:  # each worker's first item is its first draw
        seed = b["worker_seed"][0]
        np.random.seed(np.random.SeedSequence(seed).generate_state(4))
        assert b["numpy"][0] == float(np.random.rand())
        assert b["random"][0] == random.Random(seed).random()
        assert b["torch"][0] == float(torch.rand((), generator=torch.Generator().manual_seed(seed)))


def test_settings_and_generator():
    loader = make_loader(_Draws(), batch_size=4, num_workers=2, seed=3)
    assert loader.persistent_workers is True
    assert loader.pin_memory is torch.cuda.is_available()
    assert loader.generator.initial_seed() == 3
    assert make_loader(_Draws(), batch_size=4, num_workers=0).persistent_workers is False
    assert make_loader(_Draws(), batch_size=4, num_workers=None).num_workers == default_num_workers()


def test_batch_sampler_and_shuffle_are_reproducible_in_the_main_process():
    def order(seed):
        return [b.tolist() for b in make_loader(list(range(10)), batch_size=3, shuffle=True, num_workers=0, seed=seed)]

    assert order(1) == order(1) != order(2)
    assert sorted(sum(order(1), [])) == list(range(10))
    batches = [[0, 1], [5, 6, 7]]
    got = [b.tolist() for b in make_loader(list(range(10)), batch_size=None, batch_sampler=batches, num_workers=0)]
    assert got == [[0, 1], [5, 6, 7]]


def test_bad_combinations_state_the_rule():
    data = list(range(10))
    with pytest.raises(ValueError, match="batch_size must be None .* got batch_size, shuffle"):
        make_loader(data, batch_size=4, batch_sampler=[[0, 1]], shuffle=True, num_workers=0)
    with pytest.raises(ValueError, match="shuffle=True or a sampler, not both"):
        make_loader(data, batch_size=4, shuffle=True, sampler=[0, 1], num_workers=0)
    with pytest.raises(ValueError, match="persistent_workers=True needs num_workers > 0"):
        make_loader(data, batch_size=4, num_workers=0, persistent_workers=True)
    with pytest.raises(ValueError, match="prefetch_factor needs num_workers > 0"):
        make_loader(data, batch_size=4, num_workers=0, prefetch_factor=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        make_loader(data, batch_size=0, num_workers=0)


def test_seed_worker_outside_a_worker_changes_nothing():
    threads = torch.get_num_threads()
    state = np.random.get_state()[1].copy()
    seed_worker(0)
    assert torch.get_num_threads() == threads
    assert np.array_equal(np.random.get_state()[1], state)
