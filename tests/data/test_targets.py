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
