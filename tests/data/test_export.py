import numpy as np
import pytest
from PIL import Image

from augbal.data import FewImagesWarning, load_rgb, scan, write_image_folder


class FakeCIFAR10:
    """torchvision.datasets.CIFAR10's interface (no transform): len, [i] -> (PIL RGB 32x32, int), .classes."""

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, labels):
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        self.targets = list(labels)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return Image.fromarray(self.data[i]), self.targets[i]


def test_cifar10_interface_written_as_scannable_folder_with_exact_pixels(tmp_path):
    labels = [3, 4, 5, 5, 4, 4, 0, 9, 4, 3, 5, 4]  # 12 items: position 11 needs two digits
    data = FakeCIFAR10(labels)
    root = write_image_folder(data, tmp_path / "cifar" / "train")
    assert root == tmp_path / "cifar" / "train"
    assert sorted(p.name for p in root.iterdir()) == sorted(FakeCIFAR10.classes)  # every class has a folder
    assert sorted(p.name for p in (root / "deer").iterdir()) == ["01.png", "04.png", "05.png", "08.png", "11.png"]
    with pytest.warns(FewImagesWarning, match=r"airplane \(1\), cat \(2\), truck \(1\)"):
        index = scan(root, allow_empty=True)
    assert index.classes == tuple(sorted(FakeCIFAR10.classes))
    counts = dict(zip(index.classes, index.class_counts().tolist()))
    assert counts == {"airplane": 1, "automobile": 0, "bird": 0, "cat": 2, "deer": 5, "dog": 3,
                      "frog": 0, "horse": 0, "ship": 0, "truck": 1}
    assert index.problems == ()
    for i in (0, 7, 11):
        path = root / FakeCIFAR10.classes[labels[i]] / f"{i:02d}.png"
        assert np.array_equal(load_rgb(path), data.data[i])  # PNG: lossless


def test_class_names_from_argument_and_numpy_images(tmp_path):
    items = [(np.full((2, 3), 7, np.uint8), np.int64(1)), (np.zeros((2, 3, 3), np.uint8), 0)]
    root = write_image_folder(items, tmp_path, classes=["neg", "pos"])
    assert load_rgb(root / "pos" / "0.png")[0, 0].tolist() == [7, 7, 7]
    assert load_rgb(root / "neg" / "1.png").shape == (2, 3, 3)


@pytest.mark.parametrize(
    "items, classes, match",
    [
        ([(np.zeros((2, 2), np.uint8), 2)], ["a", "b"], r"labels must be integers in \[0, 2\); got 2 at position 0"),
        ([(np.zeros((2, 2), np.uint8), "a")], ["a", "b"], r"got 'a' at position 0"),
        ([(np.zeros((2, 2, 3), np.float32), 0)], ["a"], r"uint8 .*got ndarray of dtype float32 and shape \(2, 2, 3\) at position 0"),
        ([], None, r"classes must be a non-empty sequence"),
        ([], "ab", r"classes must be a non-empty sequence"),
        ([], ["a", "a"], r"class names must be distinct; got \['a', 'a'\]"),
        ([], ["ok", ".hidden", "x/y", ""], r"usable folder names .*got \['.hidden', 'x/y', ''\]"),
    ],
)
def test_bad_datasets_are_errors_naming_the_item(tmp_path, items, classes, match):
    with pytest.raises(ValueError, match=match):
        write_image_folder(items, tmp_path, classes=classes)
