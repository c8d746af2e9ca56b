"""Parameter types and error helpers shared by the CLI commands.

Bad arguments, judged before any work starts, are ``click.BadParameter`` (exit 2,
naming the flag and the value); failures while working are ``click.ClickException``
(exit 1, one line).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click


class NameList(click.ParamType):
    """A comma-separated list of names (``"cat,dog"``), blanks dropped; at least one name.

    >>> NameList("class").convert("cat, dog,", None, None)
    ('cat', 'dog')
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.name = f"{what} names"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = tuple(part.strip() for part in str(value).split(",") if part.strip())
        if not names:
            self.fail(f"must name at least one {self.what}; got {value!r}", param, ctx)
        return names


class OutputPath(click.ParamType):
    """A file or folder the command will write: it may not exist yet, but must be creatable.

    Checked before any work: the path, if it exists, is of the right kind and writable;
    otherwise its nearest existing parent is a writable folder (not a file).

    >>> import tempfile
    >>> OutputPath(folder=True).convert(tempfile.mkdtemp() + "/new/demo", None, None).name
    'demo'
    """

    def __init__(self, *, folder: bool) -> None:
        self.folder = folder
        self.name = "folder" if folder else "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if isinstance(value, str) and not value.strip():
            self.fail(f"must be a {self.name} path; got {value!r}", param, ctx)
        path = Path(value)
        if path.exists():
            if self.folder and not path.is_dir():
                self.fail(f"{path} is a file, not a folder", param, ctx)
            if not self.folder and path.is_dir():
                self.fail(f"{path} is a folder, not a file", param, ctx)
            if not os.access(path, os.W_OK | (os.X_OK if self.folder else 0)):
                self.fail(f"{path} is not writable", param, ctx)
            return path
        parent = path.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            self.fail(f"cannot create {path}: {parent} is a file, not a folder", param, ctx)
        if not os.access(parent, os.W_OK | os.X_OK):
            self.fail(f"cannot create {path}: {parent} is not writable", param, ctx)
        return path


class Device(click.ParamType):
    """A torch device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (as a recipe's ``device``).

    >>> Device().convert("cuda:1", None, None)
    'cuda:1'
    """

    name = "auto|cpu|cuda|cuda:N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from augbal.recipes import check_device

        try:
            return check_device("device", value)
        except ValueError:
            self.fail(f"must be auto, cpu, cuda or cuda:N; got {value!r}", param, ctx)


def bad_parameter(name: str, message: str) -> click.BadParameter:
    """A ``BadParameter`` for the current command's parameter ``name`` (its flag in the message)."""
    ctx = click.get_current_context()
    param = next(p for p in ctx.command.params if p.name == name)
    return click.BadParameter(message, ctx=ctx, param=param)


def os_error_text(exc: OSError) -> str:
    """One line for an ``OSError``: ``"Permission denied: /some/path"``."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


@contextmanager
def dataset_source(name: str, path: Any) -> Iterator[None]:
    """Turn the data layer's "PATH is no dataset" errors inside the block into ``BadParameter``
    on the argument ``name`` (exit 2): neither a folder nor a manifest, no class folders, no rows."""
    from augbal.data import EmptyManifestError, NoClassFoldersError, ScanSourceError

    try:
        yield
    except ScanSourceError:
        raise bad_parameter(name, f"must be an image folder or a .csv or .jsonl manifest; got {path}") from None
    except NoClassFoldersError as exc:
        raise bad_parameter(name, f"no class folders in {exc.root} (expected {name.upper()}/<class>/<image>, or a "
                                  f".csv or .jsonl manifest){exc.note}") from None
    except EmptyManifestError as exc:
        raise bad_parameter(name, f"manifest {exc.path} lists no images (no rows)") from None
