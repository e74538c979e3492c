"""The processes of one training run: a single process (a world of one), or
the ranks of a ``torch.distributed`` process group (gloo on CPU, NCCL on
CUDA) started by ``mlpotential train --nproc N``, by ``torchrun`` or by a
scheduler that sets torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT).

Training code calls the same methods either way; in a world of one they do
nothing, so single-process training runs the very code distributed training
runs.
"""

from __future__ import annotations

import datetime
import inspect
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

COLLECTIVE_TIMEOUT_S = 1800.0
"""How long a rank waits in a collective for the others (seconds) before it
fails: long enough for a rank whose descriptors take longer to compute, short
enough that a rank that hangs without dying does not block the run for ever
(one that dies is noticed at once by the launcher or torchrun)."""


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``size`` processes and its
    ``local_rank`` on its node (which GPU it takes)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this rank writes the model, the report and the plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, configured: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` when training on CUDA
        with several ranks (one GPU each), else the configured one."""
        if self.distributed and configured.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return configured

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (a new tensor; the same on every rank)."""
        if not self.distributed:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def synchronised(self, module: nn.Module) -> nn.Module:
        """``module`` whose parameter gradients are summed over the ranks in
        its backward pass (DistributedDataParallel), or ``module`` itself."""
        if not self.distributed:
            return module
        # The last layer's weight (1 x width) gets its gradient with other
        # strides than DDP's bucket; the copy costs nothing at this size.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        synchronised = nn.parallel.DistributedDataParallel(module, **_NO_BUFFER_SYNC)
        # The gradients of the global loss are the sum of the ranks' (each rank's
        # loss is already divided by the global batch), not DDP's mean.
        synchronised.register_comm_hook(None, _sum_gradients)
        return synchronised


_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)
"""DDP without a broadcast of the buffers (scaling, reference energies)
before every step: they are the same on every rank and never change while
training. (The option's name changed in torch 2.13.)"""


def _sum_gradients(state, bucket):  # DDP checks the annotations, and postponed ones fail its check
    """DDP's communication hook: a bucket of gradients summed over the ranks
    (a future of the summed dist.GradBucket buffer)."""
    work = dist.all_reduce(bucket.buffer(), op=dist.ReduceOp.SUM, async_op=True)
    return work.get_future().then(lambda done: done.value()[0])


def launched_ranks() -> Ranks:
    """This process's place as torchrun's variables describe it (a world of
    one when they are absent)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def joined(device: torch.device, timeout_s: float = COLLECTIVE_TIMEOUT_S) -> Iterator[Ranks]:
    """The ranks of the run this process belongs to (torchrun's variables),
    the process group joined for the duration (gloo on CPU, NCCL on CUDA)
    unless it is already; a world of one needs none."""
    if dist.is_available() and dist.is_initialized():
        yield Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
        return
    ranks = launched_ranks()
    if not ranks.distributed:
        yield ranks
        return
    if ranks.device(device).type == "cuda":
        torch.cuda.set_device(ranks.device(device))
    # On CUDA, NCCL carries the gradients and gloo the small CPU tensors
    # (counts, scaling statistics, predictions) that need no GPU.
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        init_method="env://",
        rank=ranks.rank,
        world_size=ranks.size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield ranks
    finally:
        dist.destroy_process_group()
