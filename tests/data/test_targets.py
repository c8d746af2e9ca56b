import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset, TensorDataset
from torchvision.datasets import ImageFolder

from augbal.data import scan, targets_of


class _Exploding(Dataset):
    """A dataset that fails if anything loads a sample."""

    def __init__(self, labels):
        self._labels = labels

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        raise AssertionError("targets_of must not load samples")

    def get_labels(self):
        return self._labels


def test_imagefolder_subset_concat(demo_root):
    folder = ImageFolder(str(demo_root))
    folder.__getitem__ = None  # never called
    assert targets_of(folder).tolist() == folder.targets
    sub = Subset(folder, [839, 0, 100])
    assert targets_of(sub).tolist() == [folder.targets[839], folder.targets[0], folder.targets[100]]
    both = ConcatDataset([sub, Subset(sub, [1])])
    assert targets_of(both).tolist() == targets_of(sub).tolist() + [folder.targets[0]]


def test_get_labels_and_index_and_tensor():
    assert targets_of(_Exploding([2, 0, 1])).tolist() == [2, 0, 1]
    ds = _Exploding([0])
    ds.targets = torch.tensor([1, 1, 0])
    assert targets_of(ds).tolist() == [1, 1, 0]
    assert targets_of(np.array([3.0, 1.0])).dtype == np.int64


def test_index_targets(demo_root):
    index = scan(demo_root)
    assert np.array_equal(targets_of(index), index.labels)


def test_unknown_dataset_raises_clear_error():
    with pytest.raises(TypeError, match="got TensorDataset"):
        targets_of(TensorDataset(torch.zeros(3)))
    with pytest.raises(TypeError, match="must be integers"):
        targets_of(np.array([0.5, 1.0]))


def _no_load(path):
    raise AssertionError("targets_of must not decode images")


def test_image_dataset_and_wrappers(demo_root):
    from augbal.data import ImageDataset

    index = scan(demo_root)
    ds = ImageDataset(index, loader=_no_load)
    assert np.array_equal(targets_of(ds), index.labels)
    sub = Subset(ds, torch.tensor([839, 0, 300]))
    assert targets_of(sub).tolist() == [2, 0, 1]
    folder = ImageFolder(str(demo_root))
    both = ConcatDataset([sub, folder, Subset(ConcatDataset([ds, ds]), [0, 1679])])
    assert targets_of(both).tolist() == [2, 0, 1] + folder.targets + [0, 2]


class _PairsOnly(Dataset):
    def __init__(self, attr, pairs):
        setattr(self, attr, pairs)

    def __len__(self):
        return 3

    def __getitem__(self, i):
        raise AssertionError("targets_of must not load samples")


def test_sample_pairs_and_private_labels():
    pairs = [("a.jpg", 2), ("b.jpg", 0), ("c.jpg", 2)]
    for attr in ("samples", "imgs", "_samples"):
        assert targets_of(_PairsOnly(attr, pairs)).tolist() == [2, 0, 2]
    assert targets_of(_PairsOnly("_labels", [1, 1, 0])).tolist() == [1, 1, 0]
    with pytest.raises(TypeError, match="got _PairsOnly"):
        targets_of(_PairsOnly("samples", ["a.jpg", "b.jpg", "c.jpg"]))
    with pytest.raises(TypeError, match=r"1-d array\); _PairsOnly.targets has shape \(3, 2\)"):
        targets_of(_PairsOnly("targets", [[0, 1], [1, 0], [1, 1]]))


def test_label_tensors_lists_and_tuples_are_labels():
    # a torch tensor of labels works wherever a numpy array does (it was a TypeError about datasets)
    assert targets_of(torch.tensor([2, 0, 1])).tolist() == [2, 0, 1]
    assert targets_of(torch.tensor([2, 0, 1], dtype=torch.int32)).dtype == np.int64
    assert targets_of((1, 0, 1)).tolist() == [1, 0, 1]
    assert targets_of([np.int64(3), 1]).tolist() == [3, 1]
    with pytest.raises(TypeError, match="labels must be one integer per sample \\(a 1-d array\\); the tensor has shape \\(2, 2\\)"):
        targets_of(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="labels must be integers; the tensor has dtype float32"):
        targets_of(torch.tensor([0.5, 1.0]))
