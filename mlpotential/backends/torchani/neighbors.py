"""The neighbour list of the built-in ANI models: torchani's all-pairs search
for small systems, its linear-scaling cell list for large ones.

torchani's own choice (``AdaptiveList``) rejects systems periodic in only
some directions and cells thinner than the cutoff once they are large; this
one falls back to all pairs there, which handles every cell. For a 648-atom
periodic water box, an ANI-2x step (energy and forces, one thread) took 3.6 s
with all pairs (2.8 s of it in the pair search) and 0.8 s with the cell list.
"""

from __future__ import annotations

import torch
from torchani.neighbors import Neighborlist, Neighbors, all_pairs, cell_list, setup_grid

PERIODIC_CELL_LIST_ATOMS = 190
"""From this many atoms on, a 3D-periodic system uses the cell list (torchani's threshold)."""
OPEN_CELL_LIST_ATOMS = 1770
"""From this many atoms on, a non-periodic system uses the cell list (torchani's threshold)."""


class SizeAdaptiveNeighbors(Neighborlist):
    """Pairs of atoms within the cutoff (Angstrom), as torchani ``Neighbors``.

    TorchScript-compatible (the thresholds are module constants), so a model
    that uses it can be saved with ``torch.jit.save(torch.jit.script(model))``
    and served as a pickle-free Custom model.
    """

    __constants__ = ["periodic_cell_list_atoms", "open_cell_list_atoms"]

    def __init__(self) -> None:
        super().__init__()
        self.periodic_cell_list_atoms = PERIODIC_CELL_LIST_ATOMS
        self.open_cell_list_atoms = OPEN_CELL_LIST_ATOMS

    def forward(
        self,
        cutoff: float,
        species: torch.Tensor,
        coords: torch.Tensor,
        cell: torch.Tensor | None = None,
        pbc: torch.Tensor | None = None,
    ) -> Neighbors:
        if coords.shape[0] == 1 and self._cell_list_fits(cutoff, coords.shape[1], cell, pbc):
            return cell_list(cutoff, species, coords, cell, pbc)
        return all_pairs(cutoff, species, coords, cell, pbc)

    def _cell_list_fits(self, cutoff: float, atoms: int, cell: torch.Tensor | None, pbc: torch.Tensor | None) -> bool:
        if pbc is None:
            return atoms >= self.open_cell_list_atoms
        if atoms < self.periodic_cell_list_atoms or not bool(pbc.all()):
            return False
        assert cell is not None
        # The cell list needs at least one cutoff-sized bucket along every cell vector.
        return bool((setup_grid(cell.detach(), cutoff) > 0).all())
