"""aenet XSF files: the real aenet-gpr example data (molecular and periodic)
read with energies and forces; writing and reading back is exact; ASE reads
what we write; energy-only files; malformed files are explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from mlpotential.atomistic.xsf import XSFError, parse_xsf, read_xsf, read_xsf_zip, write_xsf


def test_molecular_example_set(shared_dir: Path) -> None:
    structures = list(read_xsf_zip(shared_dir / "aenet-gpr-examples/1_H2/train_set.zip"))
    assert len(structures) == 7
    assert all(not name.startswith("__MACOSX") for name, _ in structures)
    name, atoms = structures[0]
    assert name == "train_set/file_0000.xsf"
    assert atoms.get_chemical_formula() == "H2" and not atoms.pbc.any()
    assert atoms.info["energy_only"] is False
    # the two forces of a dimer are equal and opposite
    np.testing.assert_allclose(atoms.get_forces().sum(0), 0.0, atol=1e-10)


def test_periodic_example_against_the_file_text(shared_dir: Path) -> None:
    import zipfile

    archive = shared_dir / "aenet-gpr-examples/3_Li-EC/train_set_tutorial.zip"
    with zipfile.ZipFile(archive) as opened:
        text = opened.read("train_set_tutorial/file_0017.xsf").decode()
    atoms = parse_xsf(text)
    assert atoms.pbc.all() and len(atoms) == 46
    assert atoms.get_potential_energy() == pytest.approx(-16689.3502439020012389, abs=1e-9)
    np.testing.assert_allclose(np.diag(atoms.cell.array), [10.317, 10.317, 32.0])
    first = text.splitlines()[9].split()
    assert first[0] == "Li"
    np.testing.assert_allclose(atoms.positions[0], [float(v) for v in first[1:4]])
    np.testing.assert_allclose(atoms.get_forces()[0], [float(v) for v in first[4:7]])


@pytest.mark.parametrize("example", ["1_H2/train_set.zip", "3_Li-EC/train_set_tutorial.zip"])
def test_write_then_read_is_exact_and_ase_agrees(shared_dir: Path, tmp_path: Path, example: str) -> None:
    _, atoms = next(iter(read_xsf_zip(shared_dir / "aenet-gpr-examples" / example)))
    path = write_xsf(tmp_path / "copy.xsf", atoms)
    again = read_xsf(path)
    np.testing.assert_array_equal(again.positions, atoms.positions)
    np.testing.assert_array_equal(again.cell.array, atoms.cell.array)
    np.testing.assert_array_equal(again.get_forces(), atoms.get_forces())
    assert again.get_potential_energy() == atoms.get_potential_energy()
    by_ase = read(path)
    np.testing.assert_allclose(by_ase.positions, atoms.positions, atol=1e-12)
    assert list(by_ase.pbc) == list(atoms.pbc)


def test_positions_only_is_energy_only() -> None:
    atoms = parse_xsf("# total energy = -1.5 eV\n\nATOMS\nH 0 0 0\nH 0 0 0.74\n")
    assert atoms.info["energy_only"] is True
    assert atoms.get_potential_energy() == -1.5
    assert "forces" not in atoms.calc.results


def test_other_energy_units_and_atomic_numbers() -> None:
    atoms = parse_xsf("# total energy = -0.5 Ha\nATOMS\n1 0 0 0 0 0 0.1\n1 0 0 0.74 0 0 -0.1\n")
    assert atoms.get_chemical_symbols() == ["H", "H"]
    assert atoms.get_potential_energy() == pytest.approx(-0.5 * 27.211386, rel=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ATOMS\nH 0 0 0 1 1 1\nH 0 0 1\n", "some atom lines have forces"),
        ("ATOMS\nQq 0 0 0\n", "not a chemical element"),
        ("ATOMS\nH 0 0\n", "expected 'symbol x y z"),
        ("CRYSTAL\nPRIMCOORD\n1 1\nH 0 0 0\n", "PRIMCOORD before PRIMVEC"),
        ("CRYSTAL\nPRIMVEC\n1 0 0\n0 1 0\n0 0 1\nPRIMCOORD\n2 1\nH 0 0 0\n", "announces 2 atoms"),
        ("CRYSTAL\nPRIMVEC\n1 0 0\n0 1 0\n0 0 1\nPRIMCOORD\n1 1\nH 0 0 0\nH 0 0 1\n", "announces 1 atoms but more"),
        ("ANIMSTEPS 2\n", "multi-frame"),
        ("MOLECULE\n", "expected ATOMS, CRYSTAL"),
        ("# total energy = 3 kcal\nATOMS\nH 0 0 0\n", "unknown energy unit"),
    ],
)
def test_malformed_files_are_explained(text: str, message: str) -> None:
    with pytest.raises(XSFError, match=message):
        parse_xsf(text, "bad.xsf")
