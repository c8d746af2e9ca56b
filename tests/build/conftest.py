"""Tiny generated image folders for build tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_folder(root: Path, counts: dict[str, int], *, seed: int = 0, side: int = 12) -> Path:
    """``root/<class>/<i>.png`` with ``counts`` images per class of random pixels (all distinct)."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, size=(side, side + 2, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture
def small_source(tmp_path: Path) -> Path:
    """Three classes, 12 / 5 / 2 images."""
    return make_folder(tmp_path / "src", {"a": 12, "b": 5, "c": 2})


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(name="make_folder")
def _make_folder_fixture():
    return make_folder


@pytest.fixture(name="tree_bytes")
def _tree_bytes_fixture():
    return tree_bytes
