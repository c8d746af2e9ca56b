"""The problems report: every file a scan saw but did not keep, as CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .._atomic import atomic_write
from ._index import ImageIndex


def write_problems(index: ImageIndex, path: str | os.PathLike[str]) -> Path:
    """Write ``index.problems`` to a CSV file with columns ``path,kind,reason``; return its path.

    The file is written whole and then moved into place, so a reader never sees half
    a report; missing parent folders are created (as ``write_manifest`` does).

    Example:
        >>> import tempfile, os
        >>> from augbal.data import ImageIndex, Problem
        >>> index = ImageIndex.from_arrays([], [], ["a"], problems=[Problem("x.jpg", "corrupt", "bad")])
        >>> out = write_problems(index, os.path.join(tempfile.mkdtemp(), "problems.csv"))
        >>> out.read_text().splitlines()
        ['path,kind,reason', 'x.jpg,corrupt,bad']
    """
    out = Path(path)
    # scan's problems are valid UTF-8 (names that are not are shown escaped); surrogateescape
    # writes those of a hand-made index as their own bytes instead of failing
    with atomic_write(out, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "kind", "reason"])
        for p in index.problems:
            writer.writerow([p.path, p.kind, p.reason])
    return out
