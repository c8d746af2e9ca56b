"""Warm-up for the build's fork server: imported there (``_execute._PRELOAD``), never by augbal itself.

Importing this module builds every albumentations policy once and runs it on a tiny image,
and encodes a JPEG and a PNG: the first call of a policy in a fresh process costs about
0.5 s of CPU (albumentations' lazy imports, pydantic validators built per transform class,
Pillow's encoders), which every worker forked from a warmed server no longer pays. Any
failure here is swallowed: the workers then warm themselves on their first chunk.
"""

from __future__ import annotations


def warm() -> None:
    """Run each albumentations policy and both encoders once (outputs discarded)."""
    import numpy as np

    from augbal.augment import POLICIES, AlbumentationsPolicy

    from ._execute import Augmenter

    image = np.zeros((8, 8, 3), np.uint8)
    for name in POLICIES.names():
        if issubclass(POLICIES.get(name), AlbumentationsPolicy):
            augmenter = Augmenter({"name": name}, size=8)
            augmenter.encode(image, label=0, source_hash="0", repeat=1, fmt="JPEG")
            augmenter.encode(image, label=0, source_hash="0", repeat=1, fmt="PNG")


try:
    warm()
except Exception:  # noqa: BLE001 - a warm-up only; workers warm themselves otherwise
    pass
