"""The backend registry: which backends exist and every fact about each (one
:class:`BackendSpec` record per backend). Keyword validation
(:mod:`.keywords`), the calculator factory (:mod:`.factory`) and the installer
read it; nothing else holds a fact about a backend.

Backend modules are imported only when a calculator is built, so listing the
backends (the installer, ``--help``, keyword validation) needs none of their
libraries.

Every calculator a backend returns works in ASE units (eV, Angstrom,
eV/Angstrom, eV/Angstrom^3 for stress). Backends with an uncertainty estimate
also fill ``results["energy_std"]`` (eV) on every calculation, and
``results["forces_std"]`` (eV/Angstrom, shape (nAtoms, 3)) when the property
``"forces_std"`` is asked for, because that costs extra work.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlpotential.units import ModelUnits

CUSTOM = "Custom"


@dataclass(frozen=True)
class BackendSpec:
    """What the engine needs to know about one backend before importing it.

    ``models`` are the accepted Model values (built-in names and/or
    ``Custom``), the first is the default. ``parameter`` says which keyword
    holds a Custom model: ``"ParameterFile"`` or ``"ParameterDir"``.
    ``factory`` is ``"module:function"``; the function takes EngineSettings
    and returns an ASE calculator. ``libraries`` are the import names the
    backend needs (the installer checks them), ``install_name`` the argument
    of ``mlpotential install`` that provides them. ``built_in_parameter_dir``:
    built-in models may be read from a ``ParameterDir`` (TorchANI's NeuroChem
    files).
    """

    name: str
    models: tuple[str, ...]
    parameter: str | None
    factory: str
    default_units: ModelUnits
    libraries: tuple[str, ...] = ()
    install_name: str | None = None
    description: str = ""
    built_in_parameter_dir: bool = False

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def built_in_models(self) -> tuple[str, ...]:
        """The Model values that name a model shipped or downloaded, not ``Custom``."""
        return tuple(model for model in self.models if model != CUSTOM)


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            name="TorchANI",
            models=("ANI-2x", "ANI-1ccx", "ANI-1x", CUSTOM),
            parameter="ParameterFile",
            factory="mlpotential.backends.torchani.factory:create_calculator",
            default_units=ModelUnits("Hartree", "angstrom"),
            libraries=("torchani",),
            install_name="torchani",
            description="ANI-1x, ANI-1ccx, ANI-2x ensembles (torchani)",
            built_in_parameter_dir=True,
        ),
        BackendSpec(
            name="SchNetPack",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory="mlpotential.backends.schnetpack.factory:create_calculator",
            default_units=ModelUnits("eV", "angstrom"),
            libraries=("schnetpack",),
            install_name="schnetpack",
            description="SchNet/PaiNN models trained with SchNetPack",
        ),
        BackendSpec(
            name="sGDML",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory="mlpotential.backends.sgdml.factory:create_calculator",
            default_units=ModelUnits("kcal/mol", "angstrom"),
            libraries=("sgdml",),
            install_name="sgdml",
            description="sGDML kernel models (.npz)",
        ),
        BackendSpec(
            name="PiNN",
            models=(CUSTOM,),
            parameter="ParameterDir",
            factory="mlpotential.backends.pinn.factory:create_calculator",
            default_units=ModelUnits("eV", "angstrom"),
            install_name="pinn",
            description="PiNN model directories (PiNet, BPNN), evaluated in PyTorch",
        ),
        BackendSpec(
            name="HDNNP",
            models=(CUSTOM, "Cu-EMT"),
            parameter="ParameterFile",
            factory="mlpotential.backends.hdnnp.factory:create_calculator",
            default_units=ModelUnits("eV", "angstrom"),
            install_name="hdnnp",
            description="native Behler-Parrinello networks (mlpotential train); Cu-EMT is the shipped demo model",
        ),
        BackendSpec(
            name="GPR",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory="mlpotential.backends.gpr.factory:create_calculator",
            default_units=ModelUnits("eV", "angstrom"),
            libraries=("safetensors",),
            install_name="gpr",
            description="Gaussian-process surrogates saved by mlpotential gpr",
        ),
        BackendSpec(
            name="ASE",
            models=("EMT", "LennardJones"),
            parameter=None,
            factory="mlpotential.backends.ase.factory:create_calculator",
            default_units=ModelUnits("eV", "angstrom"),
            install_name="ase",
            description="ASE's own EMT and Lennard-Jones (checks an installation, tests the pipe)",
        ),
    )
}


def install_hint(spec: BackendSpec) -> str:
    """The command that installs what ``spec`` needs."""
    return f"mlpotential install {spec.install_name or spec.name.lower()}"
