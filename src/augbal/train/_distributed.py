"""DDP plumbing for ``augbal train``: the process group from the environment, sharding, gathering.

``torchrun --nproc_per_node N -m augbal train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT``; :func:`init_distributed` starts the
process group from them (gloo on CPU, nccl on CUDA), or adopts a group that is already
initialised (a test that spawns its own processes), or runs as one process when neither
is there. Validation is sharded by :func:`shard_indices` (rank ``r`` scores samples
``r, r + R, ...``, no padding) and :func:`gather_rows` puts the scored rows back in
the order of one process, so every metric (and the seeded bootstrap of the noise floor)
equals a single-process run's. Only rank 0 writes files (``DistContext.is_main``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_reduce_sum", "barrier", "broadcast_object", "gather_rows", "init_distributed", "shard_indices"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether it
    started the process group (and so must destroy it, ``owns_group``).

    Example:
        >>> ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
        >>> ctx.is_main, ctx.distributed
        (True, False)
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device must be available; got {device!r} on a machine without CUDA")
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistContext:
    """The process group of this run, from ``torch.distributed`` or the torchrun environment.

    - A group already initialised (by a caller): adopted as it is (``owns_group=False``).
    - ``WORLD_SIZE`` > 1 in the environment (torchrun): a group is started with
      ``init_method="env://"``, backend nccl when the device is CUDA, gloo otherwise;
      on CUDA the device is ``cuda:LOCAL_RANK``.
    - Otherwise: one process, no group.

    Example:
        >>> ctx = init_distributed("cpu")  # no torchrun environment here
        >>> (ctx.rank, ctx.world_size, ctx.owns_group)
        (0, 1, False)
    """
    dev = resolve_device(device)
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local % max(1, torch.cuda.device_count()))
        return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(rank=0, world_size=1, local_rank=0, device=dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://", rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=True)


def close_distributed(ctx: DistContext) -> None:
    """Destroy the process group if this run started it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(n: int, ctx: DistContext) -> range:
    """The samples this rank scores: ``rank, rank + world_size, ...`` (no padding, so no
    sample counts twice).

    Example:
        >>> list(shard_indices(5, DistContext(1, 2, 1, torch.device("cpu"))))
        [1, 3]
    """
    return range(ctx.rank, n, ctx.world_size)


def gather_rows(rows: torch.Tensor, n: int, ctx: DistContext) -> torch.Tensor:
    """Undo :func:`shard_indices`: every rank gets all ``n`` rows in the single-process order.

    ``rows`` holds this rank's rows (its shard's samples, in shard order). Shards differ in
    length by at most one; they are padded to equal length for ``all_gather`` and the
    padding dropped.

    Example:
        >>> ctx = DistContext(0, 1, 0, torch.device("cpu"))
        >>> gather_rows(torch.arange(3.0).reshape(3, 1), 3, ctx).flatten().tolist()
        [0.0, 1.0, 2.0]
    """
    if not ctx.distributed:
        return rows
    world = ctx.world_size
    longest = -(-n // world)
    pad = longest - rows.shape[0]
    padded = torch.cat([rows, rows.new_zeros((pad, *rows.shape[1:]))]) if pad else rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    out = rows.new_empty((n, *rows.shape[1:]))
    for r, part in enumerate(parts):
        count = len(range(r, n, world))
        out[r::world] = part[:count]
    return out


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum of ``values`` over all ranks (a copy; ``values`` itself on one process)."""
    if not ctx.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. a decision only rank 0 took)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op on one process)."""
    if ctx.distributed:
        dist.barrier()
