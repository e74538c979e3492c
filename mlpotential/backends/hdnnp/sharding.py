"""Which rank trains on which structures, so that distributed training
computes what single-process training computes.

Single-process training shuffles the training samples with the seed, cuts
the order into batches of ``batch_size`` and steps once per batch. With R
ranks every batch is the same; each rank holds part of it: the sample at
position j of the first shuffled order belongs to rank j mod R, so with a
batch size divisible by R every rank holds batch_size / R samples of every
batch. Each rank's loss is its samples' share of the batch's loss (divided
by the counts of the whole batch), and the gradients are summed over the
ranks, which gives the batch's gradient. A rank computes and keeps the
descriptors of its own samples and of its share of the validation and test
structures only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GlobalBatch:
    """A batch of the whole run: ``mine``, the structure ids (with
    repetitions where a bootstrap repeats them) this rank holds, and the
    counts of the whole batch that divide the loss: structures and force
    components."""

    mine: torch.Tensor
    structures: int
    force_components: int


@dataclass(frozen=True)
class Shards:
    """The samples (structure ids) of the run and this rank's share."""

    samples: torch.Tensor
    sample_owner: torch.Tensor
    rank: int
    size: int
    force_atoms: np.ndarray
    """Atoms with forces of every structure (0 for an energy-only one)."""

    @classmethod
    def of(
        cls, samples: Sequence[int], first_order: torch.Tensor, force_atoms: np.ndarray, rank: int, size: int
    ) -> Shards:
        owner = torch.empty(len(samples), dtype=torch.long)
        owner[first_order] = torch.arange(len(samples)) % size
        return cls(torch.as_tensor(list(samples), dtype=torch.long), owner, rank, size, force_atoms)

    def batches(self, order: torch.Tensor, size: int | None) -> Iterator[GlobalBatch]:
        """The batches of ``order`` (positions in ``samples``), ``size``
        samples each (None: all)."""
        size = size or len(order)
        for start in range(0, len(order), size):
            yield self.batch(order[start : start + size])

    def batch(self, positions: torch.Tensor) -> GlobalBatch:
        ids = self.samples[positions]
        mine = ids[self.sample_owner[positions] == self.rank]
        return GlobalBatch(mine, len(ids), 3 * int(self.force_atoms[ids.numpy()].sum()))

    def all_samples(self) -> GlobalBatch:
        """Every training sample, in order (the full batch of L-BFGS)."""
        return self.batch(torch.arange(len(self.samples)))

    def evaluation_set(self, ids: Sequence[int]) -> GlobalBatch:
        """A validation or test set: every size-th structure from the rank's own."""
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        mine = ids[torch.arange(len(ids)) % self.size == self.rank]
        return GlobalBatch(mine, len(ids), 3 * int(self.force_atoms[ids.numpy()].sum()))

    def structures(self, validation: Sequence[int], test: Sequence[int]) -> list[int]:
        """The structures this rank needs descriptors of, sorted."""
        mine = set(self.all_samples().mine.tolist())
        for ids in (validation, test):
            mine.update(self.evaluation_set(ids).mine.tolist())
        return sorted(mine)
