"""Ray, optional: imported only when an executor needs it, and one rule for which cluster to join.

Shared by ``augbal build-dataset --executor ray`` and ``augbal bench --executor ray``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["INSTALL_HINT", "RayNotInstalledError", "connect", "import_ray"]

INSTALL_HINT = "pip install augbal[ray]"


class RayNotInstalledError(ImportError):
    """``executor="ray"`` without Ray installed (the message says how to install it)."""


def import_ray() -> Any:
    """The ``ray`` module, imported now.

    Raises:
        RayNotInstalledError: Ray is not installed (``pip install augbal[ray]``).

    Example:
        >>> import_ray().__name__
        'ray'
    """
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalledError(
            f"executor 'ray' needs Ray, which is not installed ({INSTALL_HINT}); got ImportError: {exc}"
        ) from None
    return ray


def connect(ray: Any, *, address: str | None, workers: int | None) -> bool:
    """Join a Ray cluster unless this process already has; True when this call started the connection.

    ``address`` (``ray.init(address=...)``, e.g. ``"ray://head:10001"`` or ``"auto"``) wins; else
    ``RAY_ADDRESS`` when set; else a new local Ray with ``workers`` CPUs (all when None), never a
    cluster another process happened to start on this machine.
    """
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target:
        ray.init(address=target)
    else:
        ray.init(address="local", num_cpus=workers, include_dashboard=False)
    return True
