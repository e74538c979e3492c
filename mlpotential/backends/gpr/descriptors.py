"""Descriptors the GPR compares structures with.

* :class:`CartesianDescriptor`: the flattened coordinates (Angstrom); the
  kernel has closed forms for it (its Jacobian is the identity).
* :class:`SoapDescriptor`: SOAP power spectra from DScribe, at the atoms or
  at fixed points in space, with DScribe's Jacobians.
* :class:`SymmetryFunctionDescriptor`: the HDNNP backend's G2/G4 functions
  at every atom, compared element by element.

A descriptor turns a batch of structures of one composition into features
(n, C, F) and Jacobians (n, C, D, F) (D = 3 * atoms, index 3 * atom + axis);
``settings()`` is what a model file stores to rebuild it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from ase import Atoms


class Descriptor:
    """Base class; ``kind`` names the descriptor in model files."""

    kind: ClassVar[str] = ""
    cartesian: ClassVar[bool] = False
    same_element_only: ClassVar[bool] = False

    def center_species(self, symbols: tuple[str, ...]) -> torch.Tensor | None:
        """Element index of each descriptor centre where the kernel compares
        only centres of one element (``same_element_only``), else None."""
        return None

    def features(
        self, symbols: tuple[str, ...], positions: np.ndarray, cells: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (n, C, F) and Jacobians (n, C, D, F), float64 on CPU."""
        raise NotImplementedError

    def feature_bytes_per_structure(self, num_atoms: int) -> int:
        """Memory of one structure's features and Jacobians (bytes), to size batches."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError


class CartesianDescriptor(Descriptor):
    """The atomic coordinates themselves (Angstrom), as aenet-gpr's default
    descriptor: not invariant to rotation or translation, so training and
    predicted structures must share the frame."""

    kind = "cartesian"
    cartesian = True

    def coordinates(self, positions: np.ndarray) -> torch.Tensor:
        """(n, N, 3) positions as (n, 3N) float64."""
        positions = np.asarray(positions, dtype=np.float64)
        return torch.from_numpy(positions.reshape(positions.shape[0], -1).copy())

    def features(self, symbols, positions, cells):
        coordinates = self.coordinates(positions)
        n, dim = coordinates.shape
        jacobian = torch.eye(dim, dtype=torch.float64).expand(n, 1, dim, dim)
        return coordinates[:, None, :], jacobian

    def feature_bytes_per_structure(self, num_atoms: int) -> int:
        return 8 * 3 * num_atoms

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True)
class SoapSettings:
    """DScribe SOAP parameters with aenet-gpr 3.7.9's defaults. ``centers``:
    fixed points (Angstrom) where the spectra are taken; None = at every atom.
    ``n_jobs``: DScribe's worker processes. ``attach`` (centres at the atoms
    only): True, a centre moves with its atom in the Jacobians (DScribe's
    ``attach=True``), so predicted forces are minus the gradient of the
    predicted energy; False, the centres are held still, as aenet-gpr 3.7.9
    does (its forces are then not energy gradients; for comparisons)."""

    r_cut: float = 5.0
    n_max: int = 6
    l_max: int = 4
    sigma: float = 0.5
    rbf: str = "gto"
    centers: tuple[tuple[float, float, float], ...] | None = None
    method: str = "numerical"
    n_jobs: int = 1
    attach: bool = True


class SoapDescriptor(Descriptor):
    """SOAP (Bartok, Kondor, Csanyi, PRB 87, 184115 (2013)) through DScribe
    (Himanen et al., CPC 247, 106949 (2020)) with its Jacobians."""

    kind = "soap"

    def __init__(self, settings: SoapSettings, species: tuple[str, ...], periodic: bool) -> None:
        from dscribe.descriptors import SOAP

        self.soap_settings = settings
        self.species = tuple(sorted(set(species)))
        self.periodic = periodic
        self._soap = SOAP(
            species=list(self.species),
            periodic=periodic,
            r_cut=settings.r_cut,
            n_max=settings.n_max,
            l_max=settings.l_max,
            sigma=settings.sigma,
            rbf=settings.rbf,
            dtype="float64",
            sparse=False,
        )

    @property
    def num_features(self) -> int:
        return int(self._soap.get_number_of_features())

    def _num_centers(self, num_atoms: int) -> int:
        centers = self.soap_settings.centers
        return num_atoms if centers is None else len(centers)

    def feature_bytes_per_structure(self, num_atoms: int) -> int:
        return 8 * self._num_centers(num_atoms) * (1 + 3 * num_atoms) * self.num_features

    def features(self, symbols, positions, cells):
        images = [
            Atoms(symbols, positions=positions[i], cell=None if cells is None else cells[i], pbc=cells is not None)
            for i in range(positions.shape[0])
        ]
        centers = self.soap_settings.centers
        centers_arg = None if centers is None else [[list(c) for c in centers]] * len(images)
        jacobian, features = self._soap.derivatives(
            images,
            centers=centers_arg,
            method=self.soap_settings.method,
            return_descriptor=True,
            # fixed points stay where they are (DScribe 2.1's attach=True
            # also moves them, wrongly, in periodic cells)
            attach=self.soap_settings.attach and centers is None,
            n_jobs=self.soap_settings.n_jobs,
        )
        jacobian = np.asarray(jacobian, dtype=np.float64)
        features = np.asarray(features, dtype=np.float64)
        if len(images) == 1 and features.ndim == 2:
            features, jacobian = features[None], jacobian[None]
        n, num_centers, num_atoms, _, num_features = jacobian.shape
        jacobian = jacobian.reshape(n, num_centers, 3 * num_atoms, num_features)
        return torch.from_numpy(features), torch.from_numpy(jacobian)

    def settings(self) -> dict[str, Any]:
        values = asdict(self.soap_settings)
        values["centers"] = (
            None if self.soap_settings.centers is None else [list(c) for c in self.soap_settings.centers]
        )
        return {"kind": self.kind, "species": list(self.species), "periodic": self.periodic, **values}


@dataclass(frozen=True)
class SymmetryFunctionSettings:
    """Atom-centred G2/G4 symmetry functions of the native HDNNP backend
    (its default set for the elements): ``cutoff`` (Angstrom), ``n_radial``
    G2 functions, the cutoff function's name."""

    cutoff: float = 6.5
    n_radial: int = 8
    cutoff_function: str = "cosine"


class SymmetryFunctionDescriptor(Descriptor):
    """Behler-Parrinello G2/G4 functions at every atom (the HDNNP backend's
    own implementation, Jacobians in closed form). ``same_element_only``:
    the kernel compares atoms of one element with each other only, since
    the features of different elements are not comparable."""

    kind = "symmetry_functions"
    same_element_only = True

    def __init__(self, parameters) -> None:
        from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet

        self.parameters = parameters
        self._functions = SymmetryFunctionSet(parameters)

    @classmethod
    def for_elements(cls, elements: tuple[str, ...], settings: SymmetryFunctionSettings) -> SymmetryFunctionDescriptor:
        from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters

        return cls(
            SymmetryFunctionParameters.default(
                sorted(set(elements)), settings.cutoff, settings.n_radial, settings.cutoff_function
            )
        )

    def feature_bytes_per_structure(self, num_atoms: int) -> int:
        return 8 * num_atoms * (1 + 3 * num_atoms) * self.parameters.n_features

    def center_species(self, symbols: tuple[str, ...]) -> torch.Tensor:
        """Element index of each centre (the atoms)."""
        return self._functions.species(symbols)

    def features(self, symbols, positions, cells):
        from mlpotential.atomistic.neighbors import pair_vectors

        species = self._functions.species(symbols)
        num_atoms = len(symbols)
        all_features, all_jacobians = [], []
        for index in range(positions.shape[0]):
            r = torch.as_tensor(np.asarray(positions[index]), dtype=torch.float64)
            periodic = cells is not None
            cell = torch.as_tensor(np.asarray(cells[index]) if periodic else np.zeros((3, 3)), dtype=torch.float64)
            pbc = (periodic,) * 3
            neighbors = self._functions.neighbor_list(r, cell, pbc)
            vectors = pair_vectors(r, cell, neighbors)
            values, pair_jacobian = self._functions.with_pair_jacobian(vectors, neighbors, species)
            # dG_i/dr_m = sum over pairs p of centre i: J_p (delta(m, neighbour_p) - delta(m, i))
            per_pair = pair_jacobian.transpose(1, 2)  # (P, 3, F)
            jacobian = torch.zeros((num_atoms, num_atoms, 3, values.shape[1]), dtype=torch.float64)
            jacobian.index_put_((neighbors.center, neighbors.neighbor), per_pair, accumulate=True)
            jacobian.index_put_((neighbors.center, neighbors.center), -per_pair, accumulate=True)
            all_features.append(values)
            all_jacobians.append(jacobian.reshape(num_atoms, 3 * num_atoms, -1))
        return torch.stack(all_features), torch.stack(all_jacobians)

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "parameters": self.parameters.to_dict()}


def descriptor_from_settings(settings: dict[str, Any]) -> Descriptor:
    """Rebuild a descriptor from ``Descriptor.settings()`` (a model file)."""
    kind = settings.get("kind")
    if kind == CartesianDescriptor.kind:
        return CartesianDescriptor()
    if kind == SoapDescriptor.kind:
        centers = settings.get("centers")
        soap = SoapSettings(
            r_cut=float(settings["r_cut"]),
            n_max=int(settings["n_max"]),
            l_max=int(settings["l_max"]),
            sigma=float(settings["sigma"]),
            rbf=str(settings["rbf"]),
            centers=None if centers is None else tuple(tuple(float(v) for v in c) for c in centers),
            method=str(settings["method"]),
            n_jobs=int(settings["n_jobs"]),
            # files written before the switch existed held the centres still
            attach=bool(settings.get("attach", False)),
        )
        return SoapDescriptor(soap, tuple(settings["species"]), bool(settings["periodic"]))
    if kind == SymmetryFunctionDescriptor.kind:
        from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters

        return SymmetryFunctionDescriptor(SymmetryFunctionParameters.from_dict(settings["parameters"]))
    raise ValueError(f"unknown descriptor kind {kind!r} (known: cartesian, soap, symmetry_functions)")
