import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Sampler

from augbal._draw import Draw
from augbal.data import ImageDataset, ImageIndex, load_rgb, scan


def refuse_to_load(path):
    raise AssertionError(f"nothing may be decoded here; got {path}")


class ToTensor:
    """A plain transform: called with the image only."""

    def __call__(self, image):
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)


class ContextProbe:
    """An augbal-style transform: gets label and draw, and reports them back."""

    wants_context = True

    def __call__(self, image, *, label, draw):
        repeat = -1 if draw is None else draw.repeat
        epoch = -1 if draw is None else draw.epoch
        return {"pixels": int(image.sum()), "label": label, "repeat": repeat, "epoch": epoch}


class DrawSampler(Sampler):
    """Yields Draw keys: every index twice, repeats 0 and 1, in epoch 4."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield Draw(i, 0, 4)
            yield Draw(i, 1, 4)

    def __len__(self):
        return 2 * self.n


@pytest.fixture(scope="module")
def demo_index(demo_root):
    return scan(demo_root)


def test_targets_and_classes_without_decoding(demo_index):
    ds = ImageDataset(demo_index, loader=refuse_to_load)
    assert len(ds) == 840
    assert ds.classes == ["cat", "deer", "dog"]
    assert ds.targets.dtype == np.int64
    assert np.array_equal(ds.targets, demo_index.labels)
    assert ds.class_counts().tolist() == [60, 600, 180]
    assert repr(ds).startswith("ImageDataset(840 images: cat=60, deer=600, dog=180")


def test_int_and_draw_keys_give_the_same_sample(demo_index):
    ds = ImageDataset(demo_index)
    image, label = ds[700]
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    assert label == int(demo_index.labels[700]) == 2 and type(label) is int
    assert np.array_equal(image, load_rgb(demo_index.paths[700]))
    for key in (Draw(700, 3, 1), np.int64(700), torch.tensor(700), -140):
        other, other_label = ds[key]
        assert np.array_equal(other, image) and other_label == label


def test_bad_keys(demo_index):
    ds = ImageDataset(demo_index, loader=refuse_to_load)
    with pytest.raises(IndexError, match=r"must lie in \[0, 840\); got 840"):
        ds[840]
    with pytest.raises(IndexError, match="got -841"):
        ds[Draw(-841)]
    for bad in ("3", 1.0, True, (1, 0)):
        with pytest.raises(TypeError, match="an int or an augbal Draw"):
            ds[bad]


def test_transform_protocol(demo_index):
    plain = ImageDataset(demo_index, ToTensor())
    tensor, label = plain[Draw(5, 2, 0)]  # a plain transform never sees the draw
    assert tensor.shape == (3, 32, 32) and label == 0
    probe = ImageDataset(demo_index, ContextProbe())
    out, label = probe[Draw(100, 2, 7)]
    assert out["label"] == label == 1 and (out["repeat"], out["epoch"]) == (2, 7)
    out, _ = probe[100]
    assert (out["repeat"], out["epoch"]) == (-1, -1)  # draw=None for an int key
    assert out["pixels"] == int(load_rgb(demo_index.paths[100]).sum())

    class Truthy:
        wants_context = "yes"  # only `True` opts in

        def __call__(self, image):
            return image.shape

    assert ImageDataset(demo_index, Truthy())[0] == ((32, 32, 3), 0)


def test_constructor_validates():
    with pytest.raises(TypeError, match="needs an augbal ImageIndex .* got list"):
        ImageDataset(["a.jpg"])
    index = ImageIndex.from_arrays(["a.jpg"], [0], ["x"])
    with pytest.raises(TypeError, match="transform must be callable"):
        ImageDataset(index, transform=3)
    with pytest.raises(TypeError, match="loader must be callable"):
        ImageDataset(index, loader="pil")


def test_pickle_roundtrip(demo_index):
    ds = ImageDataset(demo_index.subset(range(0, 840, 40)), ToTensor())
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == 21 and np.array_equal(clone.targets, ds.targets)
    assert torch.equal(clone[3][0], ds[3][0])


def test_dataloader_workers_with_draw_keys(demo_index):
    index = demo_index.subset(np.arange(0, 840, 21))  # 40 images, all three classes
    ds = ImageDataset(index, ContextProbe())
    loader = DataLoader(ds, batch_size=8, sampler=DrawSampler(len(ds)), num_workers=2)
    batches = list(loader)
    labels = torch.cat([b[1] for b in batches])
    repeats = torch.cat([b[0]["repeat"] for b in batches])
    pixels = torch.cat([b[0]["pixels"] for b in batches])
    assert labels.tolist() == np.repeat(index.labels, 2).tolist()
    assert repeats.tolist() == [0, 1] * 40
    assert torch.cat([b[0]["epoch"] for b in batches]).tolist() == [4] * 80
    expected = [int(load_rgb(p).sum()) for p in index.paths]
    assert pixels.tolist() == np.repeat(expected, 2).tolist()

    plain = DataLoader(ImageDataset(index, ToTensor()), batch_size=10, shuffle=False, num_workers=2)
    images = torch.cat([x for x, _ in plain])
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[7], ToTensor()(load_rgb(index.paths[7])))


def test_unreadable_file_error_names_the_file(tmp_path, demo_index):
    bad = tmp_path / "broken cat.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    missing = tmp_path / "gone.jpg"
    good = demo_index.paths[0]
    index = ImageIndex.from_arrays([good, str(bad), str(missing)], [0, 0, 1], ["cat", "dog"])
    ds = ImageDataset(index)
    assert ds[0][0].shape == (32, 32, 3)
    with pytest.raises(OSError, match=r"cannot load sample 1 \(.*broken cat\.jpg\)"):
        ds[1]
    with pytest.raises(OSError, match=r"cannot load sample 2 \(.*gone\.jpg\)"):
        ds[Draw(2)]
    with pytest.raises(Exception, match="broken cat.jpg"):
        list(DataLoader(ds, batch_size=1, num_workers=2))


def test_getitems_takes_ints_draws_arrays_tensors_and_draw_batches(demo_index):
    from augbal import DrawBatch

    ds = ImageDataset(demo_index, ContextProbe())
    one = [ds[7], ds[Draw(3, 2, 5)], ds[-1]]
    assert ds.__getitems__([7, Draw(3, 2, 5), -1]) == one
    plain = [ds[i] for i in (7, 3, 839)]
    assert ds.__getitems__(np.array([7, 3, 839])) == plain
    assert ds.__getitems__(np.array([7, 3, 839], dtype=np.int32)) == plain
    assert ds.__getitems__(torch.tensor([7, 3, 839])) == plain
    batch = DrawBatch(np.array([7, 3]), np.array([0, 2]), epoch=5)
    got = ds.__getitems__(batch)
    assert got == [ds[Draw(7, 0, 5)], ds[Draw(3, 2, 5)]]
    assert [(g[0]["repeat"], g[0]["epoch"]) for g in got] == [(0, 5), (2, 5)]
    assert ds.__getitems__(np.zeros(0, dtype=np.int64)) == []


def test_getitems_rejects_bad_batches_naming_them(demo_index):
    ds = ImageDataset(demo_index, loader=refuse_to_load)
    with pytest.raises(IndexError, match=r"sample index must lie in \[0, 840\); got 840"):
        ds.__getitems__(np.array([0, 840]))
    with pytest.raises(IndexError, match=r"sample index must lie in \[0, 840\); got -841"):
        ds.__getitems__(torch.tensor([-841, 3]))
    with pytest.raises(TypeError, match="ImageDataset batch keys are ints, Draws, a 1-d integer array or tensor, "
                       "or an augbal DrawBatch; got ndarray of dtype float64 and shape \\(2,\\)"):
        ds.__getitems__(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="got ndarray of dtype bool"):
        ds.__getitems__(np.array([True, False]))
    with pytest.raises(TypeError, match="got ndarray of dtype int64 and shape \\(1, 2\\)"):
        ds.__getitems__(np.array([[0, 1]]))


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_with_sampler_batches_matches_item_mode(demo_index, workers):
    from augbal.augment import build_policy
    from augbal.sampling import ClassAwareSampler

    index = demo_index.subset(np.arange(0, 840, 12))  # 70 images, all three classes
    policy = build_policy("light", size=16, seed=3)
    ds = ImageDataset(index, policy)
    sampler = ClassAwareSampler(index.labels, seed=1, yield_draws=True)
    sampler.set_epoch(2)
    items = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=workers)
    batches = DataLoader(ds, batch_sampler=sampler.batches(8), num_workers=workers)
    assert len(items) == len(batches) == 9
    pairs = list(zip(items, batches, strict=True))
    for (xa, ya), (xb, yb) in pairs:
        assert torch.equal(ya, yb) and torch.equal(xa, xb)  # same images, labels, augmentations
    repeats = [d.repeat for d in sampler]
    assert max(repeats) >= 1  # repeats of minority images, each augmented as in item mode
    ints = ClassAwareSampler(index.labels, seed=1)
    ints.set_epoch(2)
    plain = DataLoader(ImageDataset(index, ToTensor()), batch_sampler=ints.batches(8), num_workers=workers)
    want = [load_rgb(index.paths[i]) for i in ints]
    got = torch.cat([x for x, _ in plain])
    assert got.shape == (70, 3, 32, 32)
    assert all(torch.equal(got[k], ToTensor()(w)) for k, w in enumerate(want))
