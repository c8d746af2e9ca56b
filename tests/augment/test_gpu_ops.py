"""Batch ops: exact equality with per-sample torchvision references, seeding, shapes, dtypes.

They run on CPU tensors here; the CUDA-only test checks that the hot path never syncs.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augbal.augment._gpu import (
    BatchCompose,
    BatchHorizontalFlip,
    BatchNormalize,
    BatchPadCrop,
    BatchResize,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def batch(dtype: torch.dtype = torch.uint8, n: int = 16, h: int = 10, w: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=gen)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_flip_matches_per_sample_reference(dtype):
    x = batch(dtype)
    op = BatchHorizontalFlip(p=0.5)
    flip = op.make_params(x, torch.Generator().manual_seed(3))["flip"]
    out = op(x, generator=torch.Generator().manual_seed(3))
    ref = torch.stack([TF.horizontal_flip(img) if f else img for img, f in zip(x, flip.tolist())])
    assert torch.equal(out, ref) and out.dtype == dtype
    assert 0 < int(flip.sum()) < 16  # both branches exercised


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", [None, (9, 13)])
def test_pad_crop_matches_torchvision_pad_then_crop(mode, dtype, size):
    x = batch(dtype)
    op = BatchPadCrop(size=size, padding=3, padding_mode=mode, fill=7 if dtype == torch.uint8 else 0.5)
    params = op.make_params(x, torch.Generator().manual_seed(1))
    out = op(x, generator=torch.Generator().manual_seed(1))
    h, w = size or x.shape[-2:]
    ref = torch.stack(
        [
            TF.crop(TF.pad(img, [3], fill=op.fill, padding_mode=mode), int(top), int(left), h, w)
            for img, top, left in zip(x, params["top"], params["left"])
        ]
    )
    assert torch.equal(out, ref)
    assert out.shape == (16, 3, h, w) and out.dtype == dtype
    assert len(set(zip(params["top"].tolist(), params["left"].tolist()))) > 4  # offsets drawn per sample


@pytest.mark.parametrize("padding", [0, 2])
def test_pad_crop_of_strided_views_equals_contiguous_input(padding):
    base = batch(h=14, w=15)
    for view in (base[:, :, 2:12, 1:13], base.contiguous(memory_format=torch.channels_last)[:, :, 2:12, 1:13]):
        op = BatchPadCrop(size=(8, 9), padding=padding)
        out = op(view, generator=torch.Generator().manual_seed(4))
        assert torch.equal(out, op(view.contiguous(), generator=torch.Generator().manual_seed(4)))


def test_pad_crop_hits_every_offset_including_the_extremes():
    x = batch(n=512)
    params = BatchPadCrop(padding=2).make_params(x)
    assert sorted(set(params["top"].tolist())) == [0, 1, 2, 3, 4]
    assert sorted(set(params["left"].tolist())) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("size", [(20, 24), (7, 5), (10, 12)])
def test_resize_float_matches_torchvision(size):
    x = batch(torch.float32)
    out = BatchResize(size=size)(x)
    ref = torch.stack([TF.resize(img, list(size), antialias=True) for img in x])
    assert torch.equal(out, ref)


@pytest.mark.parametrize("size", [64, 20])
def test_resize_uint8_on_cpu_matches_torchvision_native_kernel(size):
    x = batch(torch.uint8, h=32, w=32)
    out = BatchResize(size=size)(x)
    ref = torch.stack([TF.resize(img, [size, size], antialias=True) for img in x])
    assert torch.equal(out, ref) and out.dtype == torch.uint8 and out.shape == (16, 3, size, size)


def test_same_size_resize_is_a_no_op():
    x = batch()
    assert BatchResize(size=(10, 12))(x) is x


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_normalize_matches_torchvision(dtype):
    x = batch(dtype)
    out = BatchNormalize(mean=MEAN, std=STD)(x)
    ref = torch.stack([TF.normalize(TF.to_dtype(img, torch.float32, scale=True), list(MEAN), list(STD)) for img in x])
    assert torch.equal(out, ref) and out.dtype == torch.float32


def test_compose_equals_the_ops_in_sequence_on_one_generator():
    x = batch(h=32, w=32)
    ops = [BatchHorizontalFlip(), BatchPadCrop(padding=4), BatchResize(size=64), BatchNormalize(mean=MEAN, std=STD)]
    out = BatchCompose(ops, seed=5)(x)
    gen, ref = torch.Generator().manual_seed(5), x
    for op in ops:
        ref = op(ref, generator=gen)
    assert torch.equal(out, ref)
    assert out.shape == (16, 3, 64, 64) and out.dtype == torch.float32


def test_compose_is_deterministic_per_seed_and_streams_on():
    x = batch(h=32, w=32)

    def pipeline(seed):
        return BatchCompose([BatchHorizontalFlip(), BatchPadCrop(padding=4)], seed=seed)

    a, b, c = pipeline(0), pipeline(0), pipeline(1)
    first = a(x)
    assert torch.equal(first, b(x))
    assert not torch.equal(first, c(x))
    assert not torch.equal(first, a(x))  # the next batch gets new draws
    clone = pickle.loads(pickle.dumps(a))  # pickling keeps the generator state
    assert torch.equal(clone(x), a(x))


def test_ops_leave_the_global_rng_alone():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    BatchCompose([BatchHorizontalFlip(), BatchPadCrop()])(batch())
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"N, C, H, W image tensor; got \(3, 10, 12\)"):
        BatchHorizontalFlip()(batch()[0])
    with pytest.raises(TypeError, match="uint8 or floating-point images; got torch.int32"):
        BatchPadCrop()(batch().int())
    with pytest.raises(ValueError, match=r"reflect padding must be at most 9 for a \(10, 12\) image; got 10"):
        BatchPadCrop(padding=10, padding_mode="reflect")(batch())
    with pytest.raises(ValueError, match="crop must fit"):
        BatchPadCrop(size=20, padding=2)(batch())
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        BatchPadCrop(padding_mode="wrap")
    with pytest.raises(ValueError, match="3 channel statistics; got 1 channels"):
        BatchNormalize(mean=MEAN, std=STD)(batch()[:, :1])
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]; got"):
        BatchHorizontalFlip(p=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pipeline_has_no_host_sync():
    x = batch(h=32, w=32).cuda()
    ops = BatchCompose(
        [BatchHorizontalFlip(), BatchPadCrop(padding=4), BatchResize(size=64), BatchNormalize(mean=MEAN, std=STD)]
    )
    ops(x)  # warm up: generator and normalisation constants are created once per device
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = ops(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.device.type == "cuda" and out.shape == (16, 3, 64, 64) and out.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_cuda_ops_match_cpu_references(mode):
    x = batch(h=32, w=32)
    xc = x.cuda()
    flip_op, crop_op = BatchHorizontalFlip(), BatchPadCrop(padding=4, padding_mode=mode, fill=3)
    flip = flip_op.make_params(xc, torch.Generator(device="cuda").manual_seed(2))["flip"].cpu()
    out = flip_op(xc, generator=torch.Generator(device="cuda").manual_seed(2)).cpu()
    assert torch.equal(out, torch.stack([TF.horizontal_flip(i) if f else i for i, f in zip(x, flip.tolist())]))
    params = crop_op.make_params(xc, torch.Generator(device="cuda").manual_seed(2))
    out = crop_op(xc, generator=torch.Generator(device="cuda").manual_seed(2)).cpu()
    ref = torch.stack(
        [
            TF.crop(TF.pad(img, [4], fill=3, padding_mode=mode), int(t), int(left), 32, 32)
            for img, t, left in zip(x, params["top"].cpu(), params["left"].cpu())
        ]
    )
    assert torch.equal(out, ref)
    resized = BatchResize(size=64)(xc.float()).cpu()
    torch.testing.assert_close(resized, BatchResize(size=64)(x.float()), rtol=0, atol=1e-3)
    resized_u8 = BatchResize(size=64)(xc).cpu()  # float + round on CUDA, native uint8 kernel on CPU
    assert resized_u8.dtype == torch.uint8
    assert int((resized_u8.int() - BatchResize(size=64)(x).int()).abs().max()) <= 1
    normed = BatchNormalize(mean=MEAN, std=STD)(xc).cpu()
    torch.testing.assert_close(normed, BatchNormalize(mean=MEAN, std=STD)(x))
