"""A run's epoch metrics as TensorBoard scalars (optional: ``pip install 'augbal[tensorboard]'``).

``train`` writes them into ``RUN/tensorboard/`` (rank 0) when the recipe says
``log: {tensorboard: true}`` (``--set log.tensorboard=true``); a user's own loop may log its
``metrics.jsonl``-shaped rows with :class:`TensorBoardLogger` too. One step per epoch, the
values of the row; :func:`history_scalars` names the tags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from augbal._validation import is_int, is_real

__all__ = ["INSTALL_HINT", "TensorBoardLogger", "history_scalars", "import_summary_writer"]

INSTALL_HINT = "pip install 'augbal[tensorboard]'"
#: per-class lists of a row's ``val`` logged one tag per class (``val/recall/<class>``)
_PER_CLASS = ("recall",)


def import_summary_writer() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, imported now.

    Raises:
        ImportError: TensorBoard is not installed (the message says ``pip install 'augbal[tensorboard]'``).

    Example:
        >>> import_summary_writer().__name__
        'SummaryWriter'
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            f"TensorBoard logging needs the tensorboard package, which is not installed ({INSTALL_HINT}); "
            f"got ImportError: {exc}"
        ) from None
    return SummaryWriter


def history_scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one ``metrics.jsonl`` row, by tag.

    ``lr/<group>`` for each parameter group's rate, ``train/<key>`` and ``val/<key>`` for each
    number of ``row["train"]`` and ``row["val"]`` (the loss variants, accuracy, balanced
    accuracy, macro-F1, G-mean, ECE), ``val/recall/<class>`` for each class (named by
    ``row["val"]["classes"]``, else by index). Lists other than recall, text and booleans are
    left out.

    Example:
        >>> history_scalars({"epoch": 0, "lr": [0.001], "train": {"loss": 0.7},
        ...                  "val": {"loss": 0.5, "recall": [1.0, 0.5], "classes": ["cat", "dog"]}})
        {'lr/0': 0.001, 'train/loss': 0.7, 'val/loss': 0.5, 'val/recall/cat': 1.0, 'val/recall/dog': 0.5}
    """
    if not (isinstance(row, Mapping) and is_int(row.get("epoch")) and row["epoch"] >= 0):
        raise ValueError(f"row must be a metrics.jsonl row (a dict with an int 'epoch' >= 0); got {row!r}")
    lr = row.get("lr")
    rates = [lr] if is_real(lr) else list(lr) if isinstance(lr, (list, tuple)) else []
    out = {f"lr/{g}": float(v) for g, v in enumerate(rates) if is_real(v)}
    for section in ("train", "val"):
        values = row.get(section)
        if isinstance(values, Mapping):
            out.update({f"{section}/{k}": float(v) for k, v in values.items() if is_real(v)})
    val = row.get("val") if isinstance(row.get("val"), Mapping) else {}
    for key in _PER_CLASS:
        values = val.get(key)
        if isinstance(values, (list, tuple)):
            names = val.get("classes") or [str(c) for c in range(len(values))]
            out.update({f"val/{key}/{name}": float(v) for name, v in zip(names, values) if is_real(v)})
    return out


class TensorBoardLogger:
    """Each epoch's row as TensorBoard scalars in ``log_dir``, step = the row's epoch.

    The constructor only stores: the folder and the event file are made (and TensorBoard
    imported) by the first :meth:`log`. Every :meth:`log` flushes, so an interrupted run
    keeps what it logged; a resumed run adds a new event file beside the first.

    Args:
        log_dir: the folder of the event files (``RUN/tensorboard`` in a run).

    Example:
        >>> import tempfile
        >>> with TensorBoardLogger(tempfile.mkdtemp()) as logger:
        ...     logger.log({"epoch": 0, "train": {"loss": 0.7}, "val": {"loss": 0.5}})
        {'train/loss': 0.7, 'val/loss': 0.5}
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def log(self, row: Mapping[str, Any]) -> dict[str, float]:
        """Write the scalars of ``row`` (:func:`history_scalars`) at step ``row["epoch"]``; returns them."""
        scalars = history_scalars(row)
        self._write(scalars, int(row["epoch"]))
        return scalars

    def _write(self, scalars: Mapping[str, float], step: int) -> None:
        if self._writer is None:
            self._writer = import_summary_writer()(log_dir=str(self.log_dir))
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        """Close the event file (a logger that never logged has none)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
