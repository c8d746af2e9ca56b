"""Batch mixers: exact label arithmetic, the Remix rule, cutmix area correction, seeding, pickling."""

from __future__ import annotations

import inspect

import pytest
import torch

from augbal.augment._loader import make_loader
from augbal.augment._mix import MIXERS, BalancedMixUp, CutMix, MixCollate, MixUp, ReMix, _beta
from augbal.testing import MIXER_CHECKS, check_mixer


def one_hot_images(labels: torch.Tensor, num_classes: int, size: int = 8) -> torch.Tensor:
    """Images whose channel c is 1.0 everywhere iff the label is c: after any mix, the mean
    of channel c equals the weight of class c in a correctly mixed target."""
    onehot = torch.nn.functional.one_hot(labels, num_classes).float()
    return onehot[:, :, None, None].expand(-1, -1, size, size).contiguous()


LABELS = torch.tensor([0, 1, 2, 2, 1, 0, 0, 0, 1, 2, 0, 0])


def build(name: str, seed: int = 0):
    """Any registered mixer for 3 classes (with class counts where it needs them)."""
    kwargs = {"num_classes": 3, "seed": seed}
    if "class_counts" in inspect.signature(MIXERS.get(name)).parameters:
        kwargs["class_counts"] = [50, 20, 5]
    return MIXERS.build(name, **kwargs)


def call_args(mixer, images: torch.Tensor, labels: torch.Tensor) -> tuple:
    """The batch (plus a class-balanced second batch for mixers that take one)."""
    if "balanced_images" in inspect.signature(mixer.__call__).parameters:
        return images, labels, images.flip(0) * 0.5, torch.tensor([0, 1, 2] * 4)
    return images, labels


def test_registry_names_and_build():
    assert MIXERS.names() == ["balanced_mixup", "cutmix", "mixup", "remix"]
    mixer = MIXERS.build("remix", num_classes=3, class_counts=[10, 5, 1], seed=3)
    assert isinstance(mixer, ReMix) and mixer.kappa == 3.0 and mixer.tau == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_mixup_targets_match_pixels_exactly(seed):
    images = one_hot_images(LABELS, 3)
    mixed, targets = MixUp(num_classes=3, alpha=0.4, seed=seed)(images, LABELS)
    assert targets.dtype == torch.float32 and targets.shape == (12, 3)
    torch.testing.assert_close(mixed[:, :, 0, 0], targets, rtol=0, atol=0)
    torch.testing.assert_close(targets.sum(1), torch.ones(12))
    assert torch.equal(images, one_hot_images(LABELS, 3))  # input untouched


def test_mixup_draws_lambda_then_permutation_from_its_generator():
    images, labels = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 1, 0, 1, 0])
    mixed, targets = MixUp(num_classes=2, alpha=0.7, seed=11)(images, labels)
    gen = torch.Generator().manual_seed(11)
    lam = _beta(0.7, 0.7, gen)
    perm = torch.randperm(6, generator=gen)
    onehot = torch.nn.functional.one_hot(labels, 2).float()
    torch.testing.assert_close(mixed, images * lam + images[perm] * (1 - lam))
    torch.testing.assert_close(targets, onehot * lam + onehot[perm] * (1 - lam))


def test_soft_targets_in_soft_targets_out():
    soft = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    images = soft[:, :, None, None].expand(-1, -1, 4, 4).contiguous()
    mixed, targets = MixUp(num_classes=2, seed=0)(images, soft)
    torch.testing.assert_close(mixed[:, :, 0, 0], targets, rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(20))
def test_cutmix_label_weight_is_the_pasted_area(seed):
    images = one_hot_images(LABELS, 3, size=10)
    mixed, targets = CutMix(num_classes=3, alpha=1.0, seed=seed)(images, LABELS)
    # fraction of each class's pixels == its target weight, boxes clipped at the border included
    torch.testing.assert_close(mixed.mean(dim=(2, 3)), targets, rtol=0, atol=1e-6)
    torch.testing.assert_close(targets.sum(1), torch.ones(12))


def test_cutmix_box_is_clipped_and_lambda_corrected():
    mixer = CutMix(num_classes=2, seed=0)
    clipped = 0
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        top, bottom, left, right = mixer.box(10, 10, gen)
        assert 0 <= top <= bottom <= 10 and 0 <= left <= right <= 10
        gen = torch.Generator().manual_seed(seed)
        lam = _beta(1.0, 1.0, gen)
        full = int(10 * (1 - lam) ** 0.5) // 2 * 2
        clipped += (bottom - top) * (right - left) < full * full
    assert clipped > 20  # boxes crossing the border are common, so the correction matters


def test_cutmix_keeps_uint8_and_pastes_partner_pixels():
    images = torch.stack([torch.full((3, 6, 6), v, dtype=torch.uint8) for v in (10, 20, 30, 40)])
    mixed, targets = CutMix(num_classes=4, seed=5)(images, torch.arange(4))
    assert mixed.dtype == torch.uint8
    for i in range(4):
        values = set(mixed[i].unique().tolist())
        assert values <= {10, 20, 30, 40}
        share_own = (mixed[i] == images[i, 0, 0, 0]).float().mean()
        torch.testing.assert_close(targets[i, i], share_own)


@pytest.mark.parametrize(
    ("counts", "cls", "partner", "lam", "expected"),
    [
        ([900, 100, 50], 0, 1, 0.3, 0.0),  # majority i, lam < tau: label all to minority j
        ([900, 100, 50], 0, 1, 0.7, 0.7),  # majority i but lam >= tau: plain mixup
        ([900, 100, 50], 1, 0, 0.7, 1.0),  # minority i, partner's share 0.3 < tau: all to i
        ([900, 100, 50], 1, 0, 0.3, 0.3),  # minority i but partner's share 0.7 >= tau
        ([900, 100, 50], 1, 2, 0.2, 0.2),  # ratio 2 < kappa: plain mixup
        ([300, 100, 50], 0, 1, 0.4, 0.0),  # ratio exactly kappa counts as imbalanced
        ([300, 100, 50], 1, 0, 0.6, 1.0),  # ratio exactly 1/kappa
        ([300, 100, 50], 2, 2, 0.1, 0.1),  # same class: plain mixup
    ],
)
def test_remix_label_rule(counts, cls, partner, lam, expected):
    mixer = ReMix(num_classes=3, class_counts=counts)
    got = mixer.label_weights(torch.tensor([cls]), torch.tensor([partner]), lam)
    assert got.tolist() == pytest.approx([expected])


def test_remix_full_call_matches_rule():
    counts = [1000, 100, 10]
    images = one_hot_images(LABELS, 3)
    for seed in range(10):
        mixed, targets = ReMix(num_classes=3, class_counts=counts, alpha=1.0, seed=seed)(images, LABELS)
        gen = torch.Generator().manual_seed(seed)
        lam = _beta(1.0, 1.0, gen)
        perm = torch.randperm(12, generator=gen)
        torch.testing.assert_close(mixed[:, :, 0, 0], images[:, :, 0, 0] * lam + images[perm, :, 0, 0] * (1 - lam))
        for i in range(12):
            a, b = int(LABELS[i]), int(LABELS[perm[i]])
            ratio = counts[a] / counts[b]
            lam_y = 0.0 if ratio >= 3 and lam < 0.5 else 1.0 if ratio <= 1 / 3 and 1 - lam < 0.5 else lam
            expected = torch.zeros(3)
            expected[a] += lam_y
            expected[b] += 1 - lam_y
            torch.testing.assert_close(targets[i], expected)


def test_balanced_mixup_weighs_the_balanced_batch_with_beta_alpha_1():
    mixer = BalancedMixUp(num_classes=3, alpha=0.2, seed=0)
    instance = torch.zeros(12, dtype=torch.int64)
    balanced = torch.tensor([0, 1, 2] * 4)
    lams = []
    for _ in range(400):
        mixed, targets = mixer(one_hot_images(instance, 3), instance, one_hot_images(balanced, 3), balanced)
        torch.testing.assert_close(mixed[:, :, 0, 0], targets, rtol=0, atol=0)
        lams.append(float(targets[1, 1]))  # row 1: instance class 0, balanced class 1
    mean = sum(lams) / len(lams)
    assert abs(mean - 0.2 / 1.2) < 0.03  # E[Beta(0.2, 1)] = 1/6, not the 1/2 of Beta(a, a)


def test_balanced_mixup_needs_matching_batches():
    mixer = BalancedMixUp(num_classes=2)
    with pytest.raises(ValueError, match="same shape"):
        mixer(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), torch.zeros(3, 3, 4, 4), torch.tensor([0, 1, 1]))


@pytest.mark.parametrize("check", MIXER_CHECKS)
@pytest.mark.parametrize("name", MIXERS.names())
def test_mixer_conforms(name, check):
    check_mixer(build(name, seed=1), checks=[check])


def test_spec_leaves_out_the_generator():
    mixer = MixUp(num_classes=3, alpha=0.4, seed=2, generator=torch.Generator().manual_seed(2))
    assert mixer.to_dict() == {"name": "mixup", "num_classes": 3, "alpha": 0.4, "seed": 2}
    images = torch.rand(12, 3, 4, 4)
    rebuilt = MIXERS.from_spec(mixer.to_dict())
    assert rebuilt.generator is None
    assert torch.equal(mixer(images, LABELS)[0], rebuilt(images, LABELS)[0])  # seeded alike: the same stream


def test_explicit_generator_is_used_instead_of_the_seed():
    images = torch.rand(12, 3, 4, 4)
    a = MixUp(num_classes=3, seed=0, generator=torch.Generator().manual_seed(9))(images, LABELS)
    b = MixUp(num_classes=3, seed=9)(images, LABELS)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_input_errors_state_the_rule():
    mixer = MixUp(num_classes=3)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\); got \[0, 3\]"):
        mixer(torch.rand(2, 3, 4, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"one label \(row\) per image; got labels of shape \(3,\) for 2 images"):
        mixer(torch.rand(2, 3, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="sum to 1"):
        mixer(torch.rand(2, 3, 4, 4), torch.tensor([[0.5, 0.2, 0.2], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="num_classes=3 columns"):
        mixer(torch.rand(2, 3, 4, 4), torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="N, C, H, W"):
        mixer(torch.rand(3, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="floating-point images"):
        mixer(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="alpha must be a number > 0; got 0"):
        MixUp(num_classes=3, alpha=0)
    with pytest.raises(ValueError, match="one positive count per class"):
        ReMix(num_classes=3, class_counts=[10, 0, 3])
    with pytest.raises(ValueError, match="one positive count per class"):
        ReMix(num_classes=3, class_counts=[10, 3])


class _TinySet(torch.utils.data.Dataset):
    def __init__(self, n: int = 24) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((3, 4, 4), float(i)), i % 3, i


def test_mix_collate_keeps_extra_fields_and_rejects_balanced_mixup():
    collate = MixCollate(MixUp(num_classes=3, seed=0))
    images, targets, index = collate([_TinySet()[i] for i in range(6)])
    assert images.shape == (6, 3, 4, 4) and targets.shape == (6, 3)
    assert index.tolist() == list(range(6))
    with pytest.raises(TypeError, match="step time"):
        MixCollate(BalancedMixUp(num_classes=3))


def _run(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = make_loader(
        _TinySet(),
        batch_size=4,
        shuffle=True,
        num_workers=2,
        seed=seed,
        collate_fn=MixCollate(MixUp(num_classes=3, seed=0)),
        persistent_workers=False,
    )
    return [(x, y) for x, y, _ in loader]


def test_mix_collate_in_workers_is_reproducible_and_workers_differ():
    first, again, other = _run(0), _run(0), _run(1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))
    # batches 0 and 1 come from different workers: their mixing weights must differ
    weights = [set(torch.round(y.max(1).values, decimals=5).tolist()) - {1.0} for _, y in first[:2]]
    assert weights[0] and weights[1] and weights[0] != weights[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", MIXERS.names())
def test_cuda_batches_mix_without_host_sync_and_match_cpu(name):
    args = call_args(build(name), torch.rand(12, 3, 8, 8), LABELS)
    on_cpu = build(name, seed=2)(*args)
    mixer = build(name, seed=2)
    cuda_args = tuple(a.cuda() for a in args)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        on_cuda = mixer(*cuda_args)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert on_cuda[0].device.type == "cuda" and on_cuda[1].device.type == "cuda"
    torch.testing.assert_close(on_cuda[0].cpu(), on_cpu[0])
    torch.testing.assert_close(on_cuda[1].cpu(), on_cpu[1])


def test_remix_counts_given_as_a_dict_are_refused_with_the_rule():
    from augbal.augment import MIXERS

    with pytest.raises(ValueError, match=r"^class_counts needs one positive count per class \(3\), in class order; "
                                         r"got \{0: 1, 1: 2, 2: 3\}$"):
        MIXERS.build("remix", num_classes=3, class_counts={0: 1, 1: 2, 2: 3})
