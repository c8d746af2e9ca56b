"""Repeat-aware augmentation: (seed, index, repeat, epoch) fixes the bytes, in any process."""

from __future__ import annotations

import hashlib
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augbal._draw import Draw
from augbal.augment import RarityScaled, RepeatAware, SeedStream, build_policy, draw_seed_sequence
from augbal.augment._repeat import as_draw

CROSS_PROCESS = ["heavy", "randaugment", "trivialaugment"]


def image_for(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (20, 22, 3), dtype=np.uint8)


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()


def test_seed_sequence_is_the_documented_one() -> None:
    seq = draw_seed_sequence(11, Draw(5, repeat=2, epoch=3))
    assert list(seq.entropy) == [11, 5, 2, 3]
    assert list(seq.generate_state(4)) == list(np.random.SeedSequence([11, 5, 2, 3]).generate_state(4))


@pytest.mark.parametrize("name", ["light", "medium", "heavy", "autoaugment"])
def test_repeats_epochs_and_seeds_all_change_the_draw(name: str) -> None:
    policy = build_policy(name, size=20, seed=0)
    image = image_for(0)
    base = digest(policy(image, draw=Draw(3)))
    assert digest(policy(image, draw=Draw(3))) == base
    variants = [Draw(3, repeat=1), Draw(3, repeat=2), Draw(3, epoch=1), Draw(4)]
    seen = {digest(policy(image, draw=d)) for d in variants} | {digest(policy.with_params(seed=1)(image, draw=Draw(3)))}
    assert base not in seen and len(seen) >= 3  # flips alone could collide once; crops make them unique


def test_calls_in_between_do_not_shift_a_draw() -> None:
    policy = build_policy("heavy", size=16, seed=5)
    image = image_for(1)
    first = policy(image, draw=Draw(9, repeat=4))
    for i in range(5):
        policy(image, draw=Draw(i))
        policy(image)  # draw-less stream calls
    assert torch.equal(first, policy(image, draw=Draw(9, repeat=4)))


def test_tuple_and_int_draws() -> None:
    assert as_draw((1, 2, 3)) == Draw(1, 2, 3) and as_draw(np.int64(4)) == Draw(4)
    policy = build_policy("light", size=8)
    image = image_for(2)
    assert torch.equal(policy(image, draw=(6, 1, 0)), policy(image, draw=Draw(6, repeat=1)))
    with pytest.raises(ValueError, match="non-negative"):
        as_draw((1, -2, 0))
    with pytest.raises(TypeError, match="Draw"):
        as_draw(True)


def test_identical_bytes_in_a_fresh_process(tmp_path) -> None:
    policies = {n: build_policy(n, size=24, seed=7) for n in CROSS_PROCESS}
    policies["rarity_scaled"] = RarityScaled(base="heavy", counts=[90, 9], size=24, seed=7)
    draws = [Draw(0), Draw(0, repeat=1), Draw(5, repeat=2, epoch=4)]
    expected = {n: [digest(p(image_for(d.index), label=1, draw=d)) for d in draws] for n, p in policies.items()}
    (tmp_path / "policies.pkl").write_bytes(pickle.dumps(policies))
    script = f"""
import hashlib, pickle, sys, numpy as np
sys.path[:0] = {sys.path!r}
from augbal._draw import Draw
policies = pickle.loads(open({str(tmp_path / "policies.pkl")!r}, "rb").read())
image_for = lambda i: np.random.default_rng(i).integers(0, 256, (20, 22, 3), dtype=np.uint8)
draws = [Draw(0), Draw(0, repeat=1), Draw(5, repeat=2, epoch=4)]
out = {{n: [hashlib.sha256(p(image_for(d.index), label=1, draw=d).numpy().tobytes()).hexdigest() for d in draws]
        for n, p in policies.items()}}
print(repr(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert eval(result.stdout.strip().splitlines()[-1]) == expected  # noqa: S307 - our own repr


class _Images(Dataset):
    """A minimal dataset following the ImageDataset protocol: items are Draws or ints."""

    def __init__(self, policy) -> None:
        self.policy = policy

    def __len__(self) -> int:
        return 8

    def __getitem__(self, item):
        if isinstance(item, Draw):
            return self.policy(image_for(item.index), label=0, draw=item)
        return self.policy(image_for(item), label=0)


def test_identical_bytes_in_dataloader_workers() -> None:
    policy = build_policy("medium", size=16, seed=3)
    draws = [Draw(i % 4, repeat=i // 4, epoch=1) for i in range(8)]
    in_main = torch.stack([policy(image_for(d.index), label=0, draw=d) for d in draws])
    loader = DataLoader(_Images(policy), batch_size=2, num_workers=2, sampler=draws)
    in_workers = torch.cat(list(loader))
    assert torch.equal(in_main, in_workers)


def test_draw_less_streams_differ_across_workers_and_epochs() -> None:
    policy = build_policy("heavy", size=16, seed=3)
    # every item is the same image (index 0); worker 0 gets batches 0, 2, worker 1 batches 1, 3
    loader = DataLoader(_Images(policy), batch_size=1, num_workers=2, sampler=[0, 0, 0, 0])
    epoch1 = [digest(b[0]) for b in loader]
    epoch2 = [digest(b[0]) for b in loader]
    assert epoch1[0] != epoch1[1]  # the two workers' first calls differ (different worker seeds)
    assert len(set(epoch1)) == 4 and not set(epoch1) & set(epoch2)


def test_seed_stream_restarts_for_a_new_worker_seed(monkeypatch) -> None:
    import torch.utils.data as tud

    stream = SeedStream(4)
    main = [stream.next().generate_state(1)[0] for _ in range(2)]

    class Info:
        seed = 123

    monkeypatch.setattr(tud, "get_worker_info", lambda: Info)
    in_worker = [stream.next().generate_state(1)[0] for _ in range(2)]
    expected = [np.random.SeedSequence([4, n, 123], spawn_key=(1,)).generate_state(1)[0] for n in range(2)]
    assert in_worker == expected and not set(in_worker) & set(main)


def test_repeat_aware_wraps_any_transform_without_touching_global_rngs() -> None:
    from torchvision.transforms import v2

    wrapped = RepeatAware(v2.RandomResizedCrop(8, antialias=True), seed=2)
    image = torch.from_numpy(image_for(3)).permute(2, 0, 1)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    a = wrapped(image, draw=Draw(1))
    assert torch.equal(a, wrapped(image, draw=Draw(1)))
    assert not torch.equal(a, wrapped(image, draw=Draw(1, repeat=1)))
    clone = pickle.loads(pickle.dumps(wrapped))
    assert torch.equal(a, clone(image, draw=Draw(1)))
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
    numpy_user = RepeatAware(lambda x: x + np.random.rand(), seed=0)
    assert numpy_user(0.0, draw=Draw(2)) == numpy_user(0.0, draw=Draw(2)) != numpy_user(0.0, draw=Draw(3))
    with pytest.raises(TypeError, match="callable"):
        RepeatAware(3)


def test_end_to_end_with_image_dataset_and_a_draw_sampler(demo_root) -> None:
    from augbal.data import ImageDataset, scan
    from augbal.sampling import ClassAwareSampler

    dataset = ImageDataset(scan(demo_root))
    dataset.transform = RarityScaled(base="heavy", counts=dataset.class_counts(), size=16, seed=1)
    sampler = ClassAwareSampler(dataset.targets, num_samples=300, seed=0, yield_draws=True)
    sampler.set_epoch(2)
    draws = list(sampler)
    repeated = [d for d in draws if d.repeat > 0]
    assert repeated, "a class-balanced epoch over a skewed set repeats minority images"

    def run() -> list[str]:
        loader = DataLoader(dataset, sampler=draws, batch_size=8, num_workers=0)
        return [digest(x) for images, _ in loader for x in images]

    first = run()
    assert first == run()  # the same epoch of draws gives byte-identical batches
    by_draw = dict(zip(draws, first))
    for d in repeated:
        assert by_draw[d] != by_draw[Draw(d.index, 0, d.epoch)]  # repeat k differs from the first draw


@pytest.mark.parametrize("index", [0, 1, 2**32 - 1, 2**32, 2**64 + 5, int("f" * 64, 16), int("0e" * 32, 16)])
def test_seed_sequence_of_a_content_hash_index_is_the_list_one(index: int) -> None:
    # build copies use the source's sha256 as the index: 256-bit ints, read as 8 uint32 words
    for seed, repeat, epoch in [(0, 0, 0), (7, 3, 0), (2**40, 1, 2**33)]:
        got = draw_seed_sequence(seed, Draw(index, repeat=repeat, epoch=epoch))
        want = np.random.SeedSequence([seed, index, repeat, epoch])
        assert got.generate_state(8).tolist() == want.generate_state(8).tolist()


def test_reseeded_rngs_draw_what_new_ones_draw() -> None:
    from augbal.augment._repeat import numpy_python_rngs

    seeds = [np.random.SeedSequence([0, int("ab" * 32, 16), k, 0]) for k in range(5)]
    pair = numpy_python_rngs(np.random.SeedSequence(99))
    for s in seeds:
        fresh = numpy_python_rngs(s)
        again = numpy_python_rngs(s, out=pair)
        assert again is pair
        assert again[0].random(3).tolist() == fresh[0].random(3).tolist()
        assert again[0].integers(0, 2**62, 3).tolist() == fresh[0].integers(0, 2**62, 3).tolist()
        assert [again[1].random() for _ in range(3)] == [fresh[1].random() for _ in range(3)]
        assert again[1].gauss(0, 1) == fresh[1].gauss(0, 1)


def test_reseeding_needs_a_pcg64_pair() -> None:
    from augbal.augment._repeat import numpy_python_rngs

    with pytest.raises(ValueError, match="out must be a .Generator\\(PCG64\\), random.Random. pair"):
        numpy_python_rngs(np.random.SeedSequence(1), out=(np.random.Generator(np.random.SFC64(1)), random.Random(1)))


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_policy_pixels_are_those_of_the_documented_seed_sequence(name: str) -> None:
    # the policy re-seeds one generator pair per call: each call's pixels must be those of a
    # fresh pair from SeedSequence([seed, index, repeat, epoch]), whatever ran before it
    from augbal.augment._albu import _albumentations
    from augbal.augment._repeat import numpy_python_rngs

    A = _albumentations()
    policy = build_policy(name, size=16, seed=5, mean=(0, 0, 0), std=(1, 1, 1))
    reference = A.Compose(policy._ops(A, policy.magnitude), p=1.0, seed=0)
    index = int(hashlib.sha256(b"source").hexdigest(), 16)
    for repeat in [1, 2, 1, 3]:
        image = image_for(repeat)
        reference.set_random_state(*numpy_python_rngs(np.random.SeedSequence([5, index, repeat, 0])))
        want = reference(image=image)["image"]
        assert np.array_equal(policy.pixels(image, draw=Draw(index, repeat=repeat)), want)
