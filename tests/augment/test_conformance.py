"""Conformance suite: every registered policy (``POLICIES.names()``, no hand-kept list)
goes through the same checks of the policy protocol."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from augbal._draw import Draw
from augbal.augment import POLICIES, Policy, build_policy

SIZE = 24
NAMES = POLICIES.names()


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB image with structure at several scales."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(params=NAMES)
def policy(request: pytest.FixtureRequest) -> Policy:
    return build_policy(request.param, size=SIZE, seed=3)


def test_registry_has_the_promised_policies() -> None:
    promised = {"none", "flip", "light", "medium", "heavy", "randaugment", "trivialaugment", "autoaugment"}
    assert promised <= set(NAMES)


@pytest.mark.parametrize("shape", [(30, 41, 3), (41, 30, 3), (1, 1, 3), (SIZE, SIZE, 3), (3, 200, 3)])
def test_output_dtype_shape_and_range(policy: Policy, shape: tuple[int, int, int]) -> None:
    low = (0 - np.array(policy.mean)) / np.array(policy.std)
    high = (1 - np.array(policy.mean)) / np.array(policy.std)
    for i in range(4):
        out = policy(textured(*shape[:2], seed=i), label=i % 3, draw=Draw(i, repeat=i % 2, epoch=1))
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, SIZE, SIZE)
        assert out.is_contiguous() and bool(torch.isfinite(out).all())
        per_channel = out.reshape(3, -1).double()
        assert (per_channel.min(1).values.numpy() >= low - 1e-5).all()
        assert (per_channel.max(1).values.numpy() <= high + 1e-5).all()


def test_same_seed_and_draw_give_identical_bytes(policy: Policy) -> None:
    image = textured(33, 29)
    twin = build_policy(policy.to_dict())
    for draw in [Draw(0), Draw(5, repeat=2, epoch=3)]:
        a = policy(image, label=1, draw=draw)
        assert torch.equal(a, policy(image, label=1, draw=draw))
        assert torch.equal(a, twin(image, label=1, draw=draw))


def test_repeats_differ_unless_deterministic(policy: Policy) -> None:
    image = textured(33, 29)
    outs = {policy(image, label=2, draw=Draw(7, repeat=k)).numpy().tobytes() for k in range(8)}
    # random policies draw differently per repeat (flip has only two possible outputs)
    assert len(outs) == 1 if policy.deterministic else len(outs) >= 2


def test_draw_less_calls_form_a_reproducible_stream(policy: Policy) -> None:
    image = textured(33, 29)
    first = [policy(image, label=0).numpy().tobytes() for _ in range(6)]
    twin = build_policy(policy.to_dict())
    assert [twin(image, label=0).numpy().tobytes() for _ in range(6)] == first
    assert len(set(first)) == 1 if policy.deterministic else len(set(first)) >= 2


def test_label_and_input_untouched(policy: Policy) -> None:
    image = textured(20, 26)
    before = image.copy()
    label = np.int64(1)
    out = policy(image, label=label, draw=Draw(2))
    assert isinstance(out, torch.Tensor)  # a policy returns the image only, never a new label
    assert label == 1 and np.array_equal(image, before)
    image.setflags(write=False)  # read-only inputs (memory-mapped files) work too
    assert torch.equal(out, policy(image, label=1, draw=Draw(2)))


def test_global_rngs_untouched(policy: Policy) -> None:
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    policy(textured(20, 26), label=0, draw=Draw(1))
    policy(textured(20, 26), label=0)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np_state[1].tolist() == np.random.get_state()[1].tolist() and np_state[2] == np.random.get_state()[2]
    assert py_state == random.getstate()


def test_pickles_and_keeps_behaviour(policy: Policy) -> None:
    image = textured(25, 31)
    expected = policy(image, label=2, draw=Draw(4, repeat=1))  # builds the lazy pipeline first
    clone = pickle.loads(pickle.dumps(policy))
    assert clone == policy
    assert torch.equal(expected, clone(image, label=2, draw=Draw(4, repeat=1)))


def test_dict_round_trip(policy: Policy) -> None:
    data = policy.to_dict()
    assert data["name"] == policy.name and data["size"] == SIZE and data["seed"] == 3
    rebuilt = build_policy(data)
    assert rebuilt == policy and rebuilt.to_dict() == data
    assert pickle.loads(pickle.dumps(data)) == data  # plain data only
    assert build_policy(data, size=SIZE + 8)(textured(10, 10), draw=Draw(0)).shape[-1] == SIZE + 8


def test_recipe_formats_round_trip(policy: Policy) -> None:
    import json

    import yaml

    image = textured(21, 17)
    expected = policy(image, label=1, draw=Draw(2, repeat=1))
    for text in (json.dumps(policy.to_dict()), yaml.safe_dump(policy.to_dict())):
        rebuilt = build_policy(yaml.safe_load(text))  # JSON is YAML; int class keys come back as str in JSON
        assert rebuilt == policy
        assert torch.equal(expected, rebuilt(image, label=1, draw=Draw(2, repeat=1)))


def test_pil_and_grayscale_inputs(policy: Policy) -> None:
    rgb = textured(18, 22)
    gray = rgb[:, :, 0]
    gray_rgb = np.repeat(gray[:, :, None], 3, axis=2)  # grayscale converted to RGB
    draw = Draw(3, repeat=1)
    expected = policy(rgb, label=1, draw=draw)
    assert torch.equal(expected, policy(Image.fromarray(rgb), label=1, draw=draw))
    from_gray = policy(gray_rgb, label=1, draw=draw)
    assert torch.equal(from_gray, policy(gray, label=1, draw=draw))
    assert torch.equal(from_gray, policy(gray[:, :, None], label=1, draw=draw))
    assert torch.equal(from_gray, policy(Image.fromarray(gray, mode="L"), label=1, draw=draw))


def test_protocol_attributes(policy: Policy) -> None:
    assert policy.wants_context is True
    assert POLICIES.get(policy.name) is type(policy)
