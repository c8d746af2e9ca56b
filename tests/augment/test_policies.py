"""Behaviour of the individual policies, the factory and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from augbal._draw import Draw
from augbal.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    POLICIES,
    FlipPolicy,
    HeavyPolicy,
    LightPolicy,
    MediumPolicy,
    NonePolicy,
    build_policy,
)
from augbal.augment._autoaugment import _scaled_magnitudes


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A natural-looking image: low-frequency colour noise upsampled."""
    import cv2

    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def reference_normalise(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).double() / 255.0
    return (x - torch.tensor(mean).double().view(3, 1, 1)) / torch.tensor(std).double().view(3, 1, 1)


def test_none_is_exact_normalisation_at_native_size() -> None:
    image = smooth(16, 16)
    out = NonePolicy(size=16)(image, draw=Draw(9))
    assert float((out.double() - reference_normalise(image)).abs().max()) < 1e-6
    custom = NonePolicy(size=16, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))(image)
    ref = reference_normalise(image, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    assert float((custom.double() - ref).abs().max()) < 1e-6


def test_none_resizes_non_square_input_to_size() -> None:
    out = NonePolicy(size=8, mean=(0, 0, 0), std=(1, 1, 1))(np.full((30, 5, 3), 51, np.uint8))
    assert tuple(out.shape) == (3, 8, 8)
    assert torch.allclose(out, torch.full((3, 8, 8), 0.2))


def test_flip_gives_the_image_or_its_mirror_and_both_occur() -> None:
    image = smooth(12, 12)
    plain = NonePolicy(size=12)(image)
    outs = [FlipPolicy(size=12)(image, draw=Draw(i)) for i in range(16)]
    flipped = [bool(torch.equal(o, plain.flip(-1))) for o in outs]
    assert all(torch.equal(o, plain) or f for o, f in zip(outs, flipped))
    assert 0 < sum(flipped) < 16


def test_light_at_magnitude_zero_only_flips_a_square_image() -> None:
    image = smooth(20, 20)
    plain = NonePolicy(size=20)(image)
    for i in range(8):
        out = LightPolicy(size=20, magnitude=0.0)(image, draw=Draw(i))
        assert torch.equal(out, plain) or torch.equal(out, plain.flip(-1))


def mean_change(policy, image: np.ndarray, draws: int = 48) -> float:
    plain = NonePolicy(size=policy.size)(image)
    return float(np.mean([(policy(image, draw=Draw(i)) - plain).abs().mean().item() for i in range(draws)]))


@pytest.mark.parametrize("name", ["light", "medium", "heavy", "randaugment", "trivialaugment", "autoaugment"])
def test_magnitude_makes_changes_larger(name: str) -> None:
    image = smooth(32, 32, seed=4)
    weak = mean_change(build_policy(name, size=32, magnitude=0.3), image)
    strong = mean_change(build_policy(name, size=32, magnitude=2.5), image)
    assert strong > 1.2 * weak, (weak, strong)


def test_heavy_changes_more_than_medium_more_than_light() -> None:
    image = smooth(32, 32, seed=5)
    light, medium, heavy = (mean_change(p(size=32), image) for p in (LightPolicy, MediumPolicy, HeavyPolicy))
    assert light < medium < heavy


def test_medium_colour_jitter_changes_channel_means() -> None:
    image = smooth(24, 24)
    plain_means = NonePolicy(size=24)(image).mean(dim=(1, 2))
    light_means = [LightPolicy(size=24)(image, draw=Draw(i)).mean(dim=(1, 2)) for i in range(24)]
    medium_means = [MediumPolicy(size=24)(image, draw=Draw(i)).mean(dim=(1, 2)) for i in range(24)]
    spread = lambda ms: float(torch.stack([m - plain_means for m in ms]).abs().mean())  # noqa: E731
    assert spread(medium_means) > 2 * spread(light_means)


def visible_object_fractions(policy, draws: int = 200) -> np.ndarray:
    """Per draw, the fraction of a centred object (the middle half of each side of a 32x32 image)
    still in the output of ``policy``'s albumentations ops (each source pixel tracked by id)."""
    from augbal.augment._albu import _albumentations
    from augbal.augment._repeat import draw_seed_sequence, numpy_python_rngs

    A = _albumentations()
    compose = A.Compose(policy._ops(A, policy.magnitude), p=1.0, seed=0)
    ids = np.arange(1, 32 * 32 + 1, dtype=np.uint16).reshape(32, 32)
    obj = ids[8:24, 8:24].ravel()
    fractions = []
    for i in range(draws):
        compose.set_random_state(*numpy_python_rngs(draw_seed_sequence(policy.seed, Draw(i))))
        shown = compose(image=np.zeros((32, 32, 3), np.uint8), mask=ids)["mask"]
        fractions.append(np.isin(obj, shown).mean())
    return np.asarray(fractions)


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_rarity_cap_magnitude_crops_keep_the_object(name: str) -> None:
    # m=3 is RarityScaled's default cap: the rarest class must still show its object
    at_nominal = visible_object_fractions(build_policy(name, size=32, magnitude=1.0))
    at_cap = visible_object_fractions(build_policy(name, size=32, magnitude=3.0))
    assert at_nominal.min() > 0.8
    assert at_cap.min() > 0.25 and np.mean(at_cap < 0.5) < 0.1, np.quantile(at_cap, [0.0, 0.05, 0.1])
    assert at_cap.mean() < at_nominal.mean() - 0.05  # the crops still get stronger


@pytest.mark.parametrize("name", ["medium", "heavy"])
def test_affine_zoom_keeps_the_aspect_ratio(name: str) -> None:
    # "small affine": one zoom factor, like torchvision's RandomAffine(scale=...); the aspect
    # ratio change is the crop's job (capped at 4/3) and must not grow with the magnitude
    from augbal.augment._albu import _albumentations
    from augbal.augment._repeat import draw_seed_sequence, numpy_python_rngs

    A = _albumentations()
    policy = build_policy(name, size=16, magnitude=3.0)
    compose = A.Compose(policy._ops(A, policy.magnitude), p=1.0, seed=0, save_applied_params=True)
    scales = []
    for i in range(40):
        compose.set_random_state(*numpy_python_rngs(draw_seed_sequence(0, Draw(i))))
        applied = dict(compose(image=smooth(16, 16))["applied_transforms"])
        if "Affine" in applied:
            scales.append((applied["Affine"]["scale"]["x"], applied["Affine"]["scale"]["y"]))
    assert len(scales) >= 10 and len({round(x, 3) for x, _ in scales}) >= 10
    assert all(x == pytest.approx(y) for x, y in scales), scales


def jitter_factors(policy, draws: int = 200) -> np.ndarray:
    """The (brightness, contrast, saturation) factors ColorJitter drew in ``policy``'s ops."""
    from augbal.augment._albu import _albumentations
    from augbal.augment._repeat import draw_seed_sequence, numpy_python_rngs

    A = _albumentations()
    compose = A.Compose(policy._ops(A, policy.magnitude), p=1.0, seed=0, save_applied_params=True)
    factors = []
    for i in range(draws):
        compose.set_random_state(*numpy_python_rngs(draw_seed_sequence(0, Draw(i))))
        jitter = dict(compose(image=smooth(16, 16))["applied_transforms"]).get("ColorJitter")
        if jitter is not None:
            factors.append([jitter["brightness"], jitter["contrast"], jitter["saturation"]])
    return np.asarray(factors)


def test_colour_jitter_darkens_geometrically_with_magnitude() -> None:
    # m=1 is ColorJitter(0.25): factors 0.75..1.25; at RarityScaled's cap m=3 brightness times
    # contrast must not reach ~0.06 (a black, flat image): the lower factor is 0.75^m
    nominal = jitter_factors(MediumPolicy(size=16, magnitude=1.0))
    assert nominal.min() >= 0.75 and nominal.max() <= 1.25 and nominal.min() < 0.77 and nominal.max() > 1.23
    strong = jitter_factors(HeavyPolicy(size=16, magnitude=3.0))
    assert strong.min() >= 0.75**3 - 1e-9 and strong.min() < 0.75**3 + 0.03 and strong.max() > 1.7
    assert jitter_factors(MediumPolicy(size=16, magnitude=20.0)).min() >= 0.1


def test_crop_ranges_grow_geometrically_and_are_shared_by_both_families() -> None:
    from augbal.augment._policy import crop_ranges

    assert crop_ranges(0.0) == ((1.0, 1.0), (1.0, 1.0))
    assert crop_ranges(1.0)[0] == pytest.approx((0.65, 1.0)) and crop_ranges(1.0)[1] == pytest.approx((0.75, 4 / 3))
    assert crop_ranges(3.0)[0][0] == pytest.approx(0.65**3) and crop_ranges(20.0)[0][0] == 0.08
    for name in ["randaugment", "trivialaugment", "autoaugment"]:
        crop = build_policy(name, size=16, magnitude=3.0)._build()[0].transforms[0]
        assert crop.scale == pytest.approx(crop_ranges(3.0)[0]) and crop.ratio == pytest.approx(crop_ranges(3.0)[1])


def test_randaugment_magnitude_scales_and_clips_the_magnitude_table() -> None:
    from torchvision.transforms import v2

    table = v2.RandAugment._AUGMENTATION_SPACE
    rotate = _scaled_magnitudes(table["Rotate"][0], "Rotate", 2.0, 31, 32, 32)
    assert torch.allclose(rotate, 2 * torch.linspace(0, 30, 31))
    assert float(_scaled_magnitudes(table["Rotate"][0], "Rotate", 100.0, 31, 32, 32).max()) == 180.0
    assert float(_scaled_magnitudes(table["ShearX"][0], "ShearX", 10.0, 31, 32, 32).max()) == pytest.approx(0.99)
    shift = _scaled_magnitudes(table["TranslateX"][0], "TranslateX", 10.0, 31, 20, 32)
    assert float(shift.max()) == pytest.approx(150 / 331 * 32)  # never the whole side: that leaves only fill
    unscaled = _scaled_magnitudes(table["TranslateX"][0], "TranslateX", 1.0, 31, 20, 32)
    assert torch.equal(unscaled, table["TranslateX"][0](31, 20, 32))  # m=1 is torchvision's own table
    bits = _scaled_magnitudes(table["Posterize"][0], "Posterize", 3.0, 31, 32, 32)
    assert int(bits.min()) == 1 and int(bits[0]) == 8
    assert _scaled_magnitudes(table["Equalize"][0], "Equalize", 3.0, 31, 32, 32) is None


@pytest.mark.parametrize("name, params", [("trivialaugment", {}), ("autoaugment", {"variant": "cifar10"})])
def test_strong_auto_augment_never_shifts_the_image_out_of_view(name: str, params: dict) -> None:
    # m=3 (RarityScaled's cap) tripled shifts of up to 0.45 of the side; capped at the whole side
    # they left only fill in ~10% of the outputs. (AutoAugment's CIFAR-10 policy chains two
    # TranslateY ops, so even torchvision's m=1 table can shift by 0.9 of the side.)
    policy = build_policy(name, size=32, magnitude=3.0, mean=(0, 0, 0), std=(1, 1, 1), **params)
    image = np.full((32, 32, 3), 200, np.uint8)
    fill = [float((policy(image, draw=Draw(i)).abs().sum(0) == 0).float().mean()) for i in range(300)]
    assert max(fill) < 0.95, sorted(fill)[-10:]
    assert np.mean(np.asarray(fill) > 0.5) < 0.05  # one capped shift leaves 14/32 of the side as fill


def test_policies_built_at_magnitude_zero_skip_the_auto_op() -> None:
    image = smooth(16, 16)
    plain = NonePolicy(size=16)(image)
    for name in ["randaugment", "trivialaugment", "autoaugment"]:
        out = build_policy(name, size=16, magnitude=0.0)(image, draw=Draw(1))
        assert float((out - plain).abs().max()) < 0.05 or float((out - plain.flip(-1)).abs().max()) < 0.05


def test_build_policy_forms_and_errors() -> None:
    p = build_policy("heavy", size=40, seed=2)
    assert build_policy(p) is p
    assert build_policy(p, seed=5).seed == 5 and p.seed == 2
    assert build_policy({"name": "heavy", "size": 40, "seed": 2}) == p
    assert p != build_policy("heavy", size=40, seed=3) and p != build_policy("medium", size=40, seed=2)
    with pytest.raises(KeyError, match="unknown policy 'huge'; choose one of: .*heavy"):
        build_policy("huge")
    with pytest.raises(ValueError, match="needs a 'name' key"):
        build_policy({"size": 3})
    with pytest.raises(TypeError, match="registered name"):
        build_policy(3)
    with pytest.raises(TypeError):
        build_policy("light", sise=3)  # a misspelt parameter is an error, not ignored
    for bad in [{"size": 0}, {"size": 2.5}, {"magnitude": -1}, {"magnitude": float("nan")}, {"seed": -1},
                {"mean": (0.5, 0.5)}, {"std": (1, 0, 1)}]:
        with pytest.raises(ValueError, match="got"):
            build_policy("light", **bad)
    with pytest.raises(ValueError, match="variant must be one of"):
        build_policy("autoaugment", variant="mnist")
    with pytest.raises(ValueError, match="num_ops"):
        build_policy("randaugment", num_ops=-1)


def test_bad_images_are_rejected_with_the_rule() -> None:
    policy = LightPolicy(size=8)
    with pytest.raises(TypeError, match="uint8 images .* got dtype float32"):
        policy(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shaped \(H, W, 3\) .* got shape \(4, 4, 4\)"):
        policy(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="non-empty image"):
        policy(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(TypeError, match="numpy array or a PIL image; got list"):
        policy([[0]])
    with pytest.raises(ValueError, match="non-negative integers"):
        policy(np.zeros((4, 4, 3), np.uint8), draw=Draw(-1))
    with pytest.raises(TypeError, match="Draw"):
        policy(np.zeros((4, 4, 3), np.uint8), draw="first")


def test_pil_modes_are_converted_to_rgb() -> None:
    rgba = Image.new("RGBA", (9, 7), (10, 200, 30, 0))
    out = NonePolicy(size=4, mean=(0, 0, 0), std=(1, 1, 1))(rgba)
    assert torch.allclose(out[:, 0, 0], torch.tensor([10, 200, 30]) / 255.0)


def test_registry_lists_every_policy_with_a_docstring() -> None:
    for name in POLICIES.names():
        cls = POLICIES.get(name)
        assert cls.name == name and cls.__doc__ and "Example" in cls.__doc__


@pytest.mark.parametrize("name", sorted(POLICIES.names()))
def test_pixels_are_the_calls_output_before_normalisation(name: str) -> None:
    # build-dataset writes policy.pixels(...): the very pixels a mean-0 / std-1 call returns / 255,
    # and the same pixels the policy normalises with any mean and std
    image = smooth(20, 24, seed=5)
    raw = build_policy(name, size=16, seed=2, mean=(0, 0, 0), std=(1, 1, 1))
    for draw in (Draw(7, repeat=1), Draw(7, repeat=2)):
        pixels = raw.pixels(image, label=0, draw=draw)
        assert pixels.dtype == np.uint8 and pixels.shape == (16, 16, 3) and pixels.flags.c_contiguous
        called = raw(image, label=0, draw=draw)
        np.testing.assert_array_equal(torch.round(called * 255).to(torch.uint8).permute(1, 2, 0).numpy(), pixels)
        normed = build_policy(name, size=16, seed=2)(image, label=0, draw=draw)
        torch.testing.assert_close(normed, reference_normalise(pixels).float())


def test_pixels_of_a_policy_with_only_apply_unnormalise_its_tensor() -> None:
    from augbal.augment import Policy

    class Invert(Policy):  # a user policy implementing only the tensor hook
        def _apply(self, image, seeds, label):
            x = torch.from_numpy(255 - image).permute(2, 0, 1).float() / 255.0
            return (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)

    image = smooth(8, 8)
    np.testing.assert_array_equal(Invert(size=8).pixels(image, draw=Draw(0)), 255 - image)


@pytest.mark.parametrize(("kw", "message"), [
    ({"mean": 0.5}, "mean must be 3 numbers, one per channel; got 0.5"),
    ({"mean": None}, "mean must be 3 numbers, one per channel; got None"),
    ({"mean": "abc"}, "mean must be 3 numbers, one per channel; got 'abc'"),
    ({"std": (1, 0, 1)}, "std must be 3 numbers, one per channel, each > 0; got (1, 0, 1)"),
])
def test_bad_normalisation_values_are_named(kw, message):
    from augbal.augment import build_policy

    with pytest.raises(ValueError) as info:
        build_policy("light", **kw)
    assert str(info.value) == message


def test_a_label_that_is_no_class_index_is_named():
    from augbal.augment import build_policy

    policy = build_policy("light", size=8)
    with pytest.raises(ValueError, match=r"^label \(a class index\) must be an int >= 0 or None; got 'cat'$"):
        policy(np.zeros((8, 8, 3), np.uint8), label="cat")
    assert tuple(policy(np.zeros((8, 8, 3), np.uint8), label=np.int64(2)).shape) == (3, 8, 8)
