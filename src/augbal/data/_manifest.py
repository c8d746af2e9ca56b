"""Read a CSV or JSONL manifest (``path,label[,group]``) into checked rows."""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .._atomic import atomic_write

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class ManifestRow:
    """One manifest line: resolved ``path``, NFC ``label``, optional ``group`` and its ``line`` number."""

    path: str
    label: str
    group: str | None
    line: int


def read_manifest(manifest: str | os.PathLike[str], *, classes: tuple[str, ...] | None = None) -> list[ManifestRow]:
    """Parse and check a manifest; every bad line is reported at once.

    CSV: a header naming ``path`` and ``label`` (and optionally ``group``) columns, or
    no header and the columns in the order ``path,label[,group]``. JSONL: one object
    per line with ``path`` and ``label`` keys (``group`` optional); blank lines are
    skipped. Relative paths are resolved against the manifest's folder.

    Raises:
        ValueError: listing the line numbers of missing files, unknown labels (when
            ``classes`` is given) and malformed rows.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> open(os.path.join(d, "a.jpg"), "wb").close()
        >>> with open(os.path.join(d, "m.csv"), "w") as fh:
        ...     _ = fh.write("path,label\\na.jpg,cat\\n")
        >>> [(os.path.basename(r.path), r.label, r.line) for r in read_manifest(os.path.join(d, "m.csv"))]
        [('a.jpg', 'cat', 2)]
    """
    path = Path(manifest)
    base = path.parent
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ValueError(f"a manifest must be a .csv or .jsonl file; got {path.name!r}")
    raw = _read_jsonl(path) if suffix in (".jsonl", ".ndjson") else _read_csv(path)

    bad: list[str] = []
    missing: list[int] = []
    unknown: dict[str, list[int]] = {}
    known = None if classes is None else set(classes)
    rows: list[ManifestRow] = []
    for line, fields, error in raw:
        if error:
            bad.append(f"line {line}: {error}")
            continue
        file_path, label, group = fields
        label = unicodedata.normalize("NFC", label)
        resolved = os.path.normpath(file_path if os.path.isabs(file_path) else os.path.join(base, file_path))
        if not os.path.isfile(resolved):
            missing.append(line)
        if known is not None and label not in known:
            unknown.setdefault(label, []).append(line)
        rows.append(ManifestRow(resolved, label, group, line))

    messages = []
    if missing:
        messages.append(f"missing files on lines {_lines(missing)}")
    for label, lines in sorted(unknown.items()):
        messages.append(f"unknown label {label!r} (not in classes) on lines {_lines(lines)}")
    if bad:
        messages.append("bad rows: " + "; ".join(bad[:20]) + (f"; ... and {len(bad) - 20} more" if len(bad) > 20 else ""))
    if messages:
        raise ValueError(f"manifest {path} has errors: " + ". ".join(messages))
    if not rows:
        raise ValueError(f"manifest {path} lists no images")
    return rows


def _lines(numbers: list[int], limit: int = 20) -> str:
    text = ", ".join(str(n) for n in numbers[:limit])
    return text + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def _read_csv(path: Path):
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        records = list(csv.reader(fh))
    columns = {"path": 0, "label": 1, "group": 2}
    start, sizes = 0, (2, 3)
    if records:
        header = [h.strip().lower() for h in records[0]]
        if "path" in header or "label" in header:
            if "path" not in header or "label" not in header:
                yield 1, None, f"header needs 'path' and 'label' columns; got {records[0]}"
                return
            columns = {name: header.index(name) for name in ("path", "label", "group") if name in header}
            start, sizes = 1, (len(header),)
    for number, record in enumerate(records[start:], start=start + 1):
        if not record or all(not field.strip() for field in record):
            continue
        if len(record) not in sizes:
            expected = " or ".join(str(n) for n in sizes)
            yield number, None, f"expected {expected} fields (path,label[,group]); got {len(record)}"
            continue
        yield number, *_fields(record[columns["path"]], record[columns["label"]], _get(record, columns.get("group")))


def _get(record: list[str], i: int | None) -> str | None:
    return record[i] if i is not None and i < len(record) else None


def _read_jsonl(path: Path):
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict) or "path" not in obj or "label" not in obj:
                yield number, None, "expected an object with 'path' and 'label'"
                continue
            group = obj.get("group")
            yield number, *_fields(obj["path"], obj["label"], None if group is None else str(group))


def _fields(file_path, label, group):
    if not isinstance(file_path, str) or not file_path.strip():
        return None, "empty or non-text path"
    if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
        return None, "empty or non-text label"
    group = group.strip() if isinstance(group, str) else group
    return (file_path.strip(), str(label).strip(), group or None), None


def write_manifest(index, path: str | os.PathLike[str], *, relative: bool = True) -> Path:
    """Write ``index`` as a CSV manifest (``path,label,group``) that ``scan`` reads back.

    Paths are written relative to the manifest's folder when ``relative`` (so the
    manifest moves with the images), labels as class names, and the duplicate group
    when the sample has one. The file is written atomically.

    Example:
        >>> import tempfile, os
        >>> from augbal.data import ImageIndex
        >>> d = tempfile.mkdtemp()
        >>> index = ImageIndex.from_arrays([os.path.join(d, "a.jpg")], [1], ("cat", "dog"))
        >>> print(open(write_manifest(index, os.path.join(d, "m.csv"))).read().strip())
        path,label,group
        a.jpg,dog,
    """
    target = Path(path)
    if target.suffix.lower() != ".csv":
        raise ValueError(f"write_manifest writes a .csv file; got {target.name!r}")
    base = os.path.abspath(target.parent)
    # surrogateescape: a file name that is not valid UTF-8 is written as its own bytes
    # (read_manifest reads them back to the same path)
    with atomic_write(target, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "group"])
        for file_path, label, group in zip(index.paths.tolist(), index.labels.tolist(), index.groups.tolist()):
            if relative:
                file_path = os.path.relpath(os.path.abspath(file_path), base)
            writer.writerow([file_path, index.classes[label], "" if group < 0 else f"g{group}"])
    return target
