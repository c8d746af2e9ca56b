"""Read a CSV or JSONL manifest (``path,label[,group]``) into checked rows and problems."""

from __future__ import annotations

import csv
import json
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

from .._atomic import atomic_write
from ._errors import EmptyManifestError
from ._index import Problem
from ._names import is_utf8, printable_problem, shown

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")

#: The problem kinds of a manifest's bad rows; each reason names the manifest line and the path as written.
MANIFEST_PROBLEM_KINDS = ("missing", "not-a-file", "bad-row", "unknown-class", "duplicate-row")


#: Header words recognised in a CSV manifest's first row (case-insensitive), per column.
PATH_WORDS = ("path", "file", "filename", "filepath", "file_path", "image", "image_path", "img")
LABEL_WORDS = ("label", "class", "category", "target", "class_name", "classname")
GROUP_WORDS = ("group", "group_id")
_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class LabelCaseWarning(UserWarning):
    """A manifest's labels differ only by case (``Deer`` and ``deer``): kept as distinct classes."""


@dataclass(frozen=True)
class ManifestRow:
    """One manifest line: resolved ``path``, NFC ``label``, optional ``group`` and its ``line`` number."""

    path: str
    label: str
    group: str | None
    line: int


def read_manifest(manifest: str | os.PathLike[str], *, classes: tuple[str, ...] | None = None) -> list[ManifestRow]:
    """Parse and check a manifest strictly: any bad row is an error, every one listed at once.

    CSV: a first row of header words naming a path column (``path``, ``file``,
    ``filename``, ``image``, ``filepath``, ...) and a label column (``label``,
    ``class``, ``category``, ``target``, ...), optionally ``group``; or no header and
    the columns in the order ``path,label[,group]``. JSONL: one object per line with
    a path and a label key (the same words; ``group`` optional). Blank lines are
    skipped; relative paths are resolved against the manifest's folder. ``scan``
    reads manifests forgivingly instead: bad rows become ``problems``.

    Raises:
        ValueError: naming each bad row as ``manifest.csv:LINE: PATH: reason`` (missing
            files, folders, empty labels, wrong field counts, labels outside
            ``classes``), a header without a path or label column, or no rows at all.

    Warns:
        LabelCaseWarning: labels that differ only by case (``Deer`` and ``deer``).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> open(os.path.join(d, "a.jpg"), "wb").close()
        >>> with open(os.path.join(d, "m.csv"), "w") as fh:
        ...     _ = fh.write("file,class\\na.jpg,cat\\n")
        >>> [(os.path.basename(r.path), r.label, r.line) for r in read_manifest(os.path.join(d, "m.csv"))]
        [('a.jpg', 'cat', 2)]
    """
    path = Path(manifest)
    rows, problems = parse_manifest(path, classes=classes)
    if problems:
        shown = "; ".join(p.reason for p in problems[:20])
        more = f"; ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(f"manifest {path} has {len(problems)} bad row{'s' * (len(problems) != 1)}: {shown}{more}")
    if not rows:
        raise EmptyManifestError(path)
    return rows


def parse_manifest(
    manifest: str | os.PathLike[str], *, classes: tuple[str, ...] | None = None
) -> tuple[list[ManifestRow], list[Problem]]:
    """The good rows of a manifest, and a ``Problem`` for each bad one (see ``read_manifest``).

    Problem kinds (:data:`MANIFEST_PROBLEM_KINDS`): ``"missing"`` (no such file),
    ``"not-a-file"`` (a folder or other non-regular file), ``"bad-row"`` (wrong field
    count, empty path or label, invalid JSON, a path or label that is not valid UTF-8),
    ``"unknown-class"`` (a label outside ``classes``) and ``"duplicate-row"`` (a file
    an earlier row lists already: counted once, as the first row has it); each reason
    reads ``manifest.csv:LINE: PATH: reason``, text that is not UTF-8 shown escaped.

    Raises:
        ValueError: not a ``.csv``/``.jsonl`` file, or a header without a path or label column.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, "m.csv"), "w") as fh:
        ...     _ = fh.write("path,label\\ngone.jpg,cat\\n")
        >>> rows, problems = parse_manifest(os.path.join(d, "m.csv"))
        >>> rows, [(p.kind, p.reason) for p in problems]
        ([], [('missing', 'm.csv:2: gone.jpg: no such file')])
    """
    path = Path(manifest)
    base = path.parent
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ValueError(f"a manifest must be a .csv or .jsonl file; got {path.name!r}")
    raw = _read_jsonl(path) if suffix in (".jsonl", ".ndjson") else _read_csv(path)

    known = None if classes is None else set(classes)
    rows: list[ManifestRow] = []
    problems: list[Problem] = []
    seen: dict[str, ManifestRow] = {}  # resolved path -> the row that listed it first
    for line, given, fields, error in raw:
        where = f"{path.name}:{line}: " + (f"{given}: " if given else "")
        if error:
            problems.append(Problem(_resolve(base, given) if given else str(path), "bad-row", where + error))
            continue
        file_path, label, group = fields
        label = unicodedata.normalize("NFC", label)
        resolved = _resolve(base, file_path)
        if not is_utf8(resolved):  # bytes that are not UTF-8 (a Latin-1 file), or a folder so named
            bad = file_path if not is_utf8(file_path) else resolved
            rule = "path must be valid UTF-8 (save the manifest as UTF-8; rename a file whose name is not)"
            problems.append(Problem(resolved, "bad-row", where + f"{rule}; got {shown(bad)}"))
        elif not is_utf8(label):
            rule = "label must be valid UTF-8 (save the manifest as UTF-8)"
            problems.append(Problem(resolved, "bad-row", where + f"{rule}; got {shown(label)}"))
        elif not os.path.exists(resolved):  # a broken symlink too
            problems.append(Problem(resolved, "missing", where + "no such file"))
        elif not os.path.isfile(resolved):
            what = "a folder" if os.path.isdir(resolved) else "not a regular file"
            problems.append(Problem(resolved, "not-a-file", where + f"not an image file ({what})"))
        elif known is not None and label not in known:
            problems.append(Problem(resolved, "unknown-class", where + f"label {label!r} is not one of the classes"))
        elif resolved in seen:
            first = seen[resolved]
            there = "" if first.label == label else f" (labelled {first.label!r} there)"
            problems.append(Problem(resolved, "duplicate-row", where + f"the same file as line {first.line}{there}"))
        else:
            row = ManifestRow(resolved, label, group, line)
            seen[resolved] = row
            rows.append(row)
    _warn_case_only(path, rows)
    # printable: a reason names the path as written, which may not be UTF-8
    return rows, [printable_problem(p) for p in problems]


def _resolve(base: Path, file_path: str) -> str:
    return os.path.normpath(file_path if os.path.isabs(file_path) else os.path.join(base, file_path))


def _warn_case_only(path: Path, rows: list[ManifestRow]) -> None:
    spellings: dict[str, dict[str, int]] = {}
    for row in rows:
        spellings.setdefault(row.label.casefold(), {}).setdefault(row.label, row.line)
    clashes = [sorted(v.items(), key=lambda kv: kv[1]) for v in spellings.values() if len(v) > 1]
    if clashes:
        listed = "; ".join(" and ".join(f"{label!r} (line {line})" for label, line in group) for group in clashes)
        warnings.warn(
            LabelCaseWarning(f"manifest {path.name} has labels that differ only by case, kept as distinct classes: {listed}"),
            stacklevel=3,
        )


def _header_columns(record: list[str]) -> dict[str, int] | None:
    """Column positions when ``record`` is a header row; ``None`` when it is a data row.

    A header is all header words, or names a path and a label column among other plain
    column names (``source_hash``, ``repeat``, ...: a build manifest's extra columns), which
    are then ignored."""
    words = [field.strip().lower() for field in record]
    known = [w in PATH_WORDS or w in LABEL_WORDS or w in GROUP_WORDS for w in words]
    if not words or not any(known):
        return None
    if not all(known) and not (
        any(w in PATH_WORDS for w in words)
        and any(w in LABEL_WORDS for w in words)
        and all(_COLUMN_NAME.fullmatch(w) for w in words)
    ):
        return None
    columns = {}
    for name, vocabulary in (("path", PATH_WORDS), ("label", LABEL_WORDS), ("group", GROUP_WORDS)):
        found = [i for i, w in enumerate(words) if w in vocabulary]
        if found:
            columns[name] = found[0]
    return columns


def _read_csv(path: Path):
    """Yield ``(line, given_path, fields, error)`` per non-blank data row."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        records = list(enumerate(csv.reader(fh), start=1))
    records = [(n, r) for n, r in records if r and any(field.strip() for field in r)]
    columns = {"path": 0, "label": 1, "group": 2}
    sizes: tuple[int, ...] = (2, 3)
    shape = "path,label[,group]"
    if records:
        number, first = records[0]
        header = _header_columns(first)
        # a file that happens to be called "image" with label "class" is data, not a header
        if header is not None and not os.path.isfile(_resolve(path.parent, first[header.get("path", 0)].strip())):
            if "path" not in header or "label" not in header:
                raise ValueError(
                    f"manifest {path} header needs a path column ({', '.join(PATH_WORDS[:5])}, ...) and a label "
                    f"column ({', '.join(LABEL_WORDS[:4])}, ...); got {first}"
                )
            columns, sizes = header, (len(first),)
            shape = f"as the header: {','.join(field.strip() for field in first)}"
            records = records[1:]
    for number, record in records:
        given = record[columns["path"]].strip() if columns["path"] < len(record) else ""
        if len(record) not in sizes:
            expected = " or ".join(str(n) for n in sizes)
            yield number, given, None, f"expected {expected} fields ({shape}); got {len(record)}"
            continue
        yield number, given, *_fields(record[columns["path"]], record[columns["label"]], _get(record, columns.get("group")))


def _get(record: list[str], i: int | None) -> str | None:
    return record[i] if i is not None and i < len(record) else None


def _read_jsonl(path: Path):
    """Yield ``(line, given_path, fields, error)`` per non-blank line."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, "", None, f"invalid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict):
                yield number, "", None, "expected an object with 'path' and 'label'"
                continue
            path_key = next((k for k in PATH_WORDS if k in obj), None)
            label_key = next((k for k in LABEL_WORDS if k in obj), None)
            given = obj[path_key].strip() if path_key is not None and isinstance(obj[path_key], str) else ""
            if path_key is None or label_key is None:
                yield number, given, None, "expected an object with 'path' and 'label'"
                continue
            group_key = next((k for k in GROUP_WORDS if k in obj), None)
            group = None if group_key is None or obj[group_key] is None else str(obj[group_key])
            yield number, given, *_fields(obj[path_key], obj[label_key], group)


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
    # scan indexes only UTF-8 names; surrogateescape writes a hand-made index's other names
    # as their own bytes (which scan then refuses as bad rows) instead of failing half-way
    with atomic_write(target, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "group"])
        for file_path, label, group in zip(index.paths.tolist(), index.labels.tolist(), index.groups.tolist()):
            if relative:
                file_path = os.path.relpath(os.path.abspath(file_path), base)
            writer.writerow([file_path, index.classes[label], "" if group < 0 else f"g{group}"])
    return target
