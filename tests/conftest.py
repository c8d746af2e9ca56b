"""Shared fixtures: the embedded demo set, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from augbal.data import demo_dataset


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo images as an image-folder tree (read-only for tests)."""
    return demo_dataset(tmp_path_factory.mktemp("demo") / "images")
