"""The Ray executor: the plan's augmented copies as Ray tasks, through the same chunk function as ``run_local``.

Ray is imported only when this executor runs; without it, ``import_ray`` raises
``RayNotInstalledError`` saying how to install it (``pip install augbal[ray]``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._execute import _CHUNK, _augment_chunk, _chunks, chunk_failed, pending_items
from ._plan import Item
from .._ray import INSTALL_HINT, RayNotInstalledError, import_ray
from .._ray import connect as _connect

def run_ray(
    items: Sequence[Item],
    root: str,
    *,
    spec: Any,
    size: int | None,
    link: bool,
    workers: int | None = None,
    resume: bool = False,
    advance: Callable[[int], None] | None = None,
    address: str | None = None,
    max_in_flight: int | None = None,
) -> int:
    """Write every item of a plan under ``root``: originals here, augmented copies as Ray tasks.

    Each task (``num_cpus=1``) runs the chunk function ``run_local``'s processes run, on the
    same chunks, so the bytes are the same as with any ``workers``. At most ``max_in_flight``
    tasks (default: twice the cluster's CPUs) are pending at once (``ray.wait``), so memory
    does not grow with the number of images. ``root`` must be a folder every Ray node can
    write (a shared file system; relative paths are sent as absolute ones) and augbal must be
    installed on the nodes. A Ray already
    initialised in this process is used as it is; otherwise see ``address``. ``resume`` and
    ``advance`` behave as in ``run_local``. Returns the augmented copies written.

    Args:
        address: passed to ``ray.init(address=...)``; None: ``RAY_ADDRESS`` if set, else a
            new local Ray with ``workers`` CPUs, shut down at the end.

    Raises:
        RayNotInstalledError: Ray is not installed.
        BuildTaskError: a task failed, naming its output file and source.

    Example:
        >>> run_ray([], ".", spec={"name": "light"}, size=None, link=False)  # nothing to do: Ray never starts
        0
    """
    step = advance or (lambda n: None)
    chunks = _chunks(pending_items(items, root, link=link, resume=resume, step=step), _CHUNK)
    first = next(chunks, None)
    if first is None:
        return 0
    ray = import_ray()
    started = _connect(ray, address=address, workers=workers)
    try:
        task = ray.remote(num_cpus=1)(_augment_chunk)
        bound = max_in_flight or 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: dict[Any, list[Item]] = {}
        done = 0

        def collect(refs: Iterable[Any]) -> None:
            nonlocal done
            for ref in refs:
                chunk = pending.pop(ref)
                try:
                    n = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the task raised: its own error names the file
                    cause = getattr(exc, "cause", None)
                    raise chunk_failed(chunk, cause if isinstance(cause, Exception) else exc) from None
                except ray.exceptions.RayError as exc:  # the worker or its node died
                    raise chunk_failed(chunk, exc) from None
                done += n
                step(n)

        try:
            for chunk in _prepend(first, chunks):
                if len(pending) >= bound:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    collect(ready)
                # workers run elsewhere (another node, another cwd): paths travel absolute
                sent = [replace(item, source=os.path.abspath(item.source)) for item in chunk]
                pending[task.remote(sent, os.path.abspath(root), spec, size)] = chunk
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                collect(ready)
        except BaseException:
            for ref in pending:  # the build stops: nothing more is written (written files stay, resumable)
                ray.cancel(ref)
            raise
        return done
    finally:
        if started:
            ray.shutdown()


def _prepend(first: list[Item], rest: Iterable[list[Item]]) -> Iterable[list[Item]]:
    yield first
    yield from rest
