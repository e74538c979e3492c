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
    """Every fact about one backend, known before importing it.

    Keywords: ``models`` are the accepted Model values (built-in names and/or
    ``Custom``), the first is the default; ``parameter`` says which keyword
    holds a Custom model (``"ParameterFile"`` or ``"ParameterDir"``);
    ``built_in_parameter_dir``: built-in models may be read from a
    ``ParameterDir`` (TorchANI's NeuroChem files); ``devices`` are the Device
    kinds it runs on (``"cpu"``, ``"cuda"``); ``fixed_units``: the model's
    units are fixed, so MLEnergyUnit/MLDistanceUnit must stay Auto;
    ``default_units`` are what Auto means otherwise.

    ``optional_parameters``: path keywords a Custom model may take besides
    its ``parameter`` (the files a user's ASE calculator reads).

    Code: ``factory`` and ``probe`` are ``"module:function"``; the factory
    takes EngineSettings and returns an ASE calculator, the probe (the
    installer's check that the backend works here) returns a one-line
    description of a tiny evaluation and raises when it fails.
    ``committee_factory``, where a backend has one, builds a committee (several
    model files) that shares work between its members; otherwise each member
    comes from ``factory`` and a generic committee averages them.

    Installation: ``install_name`` is the ``mlpotential install`` argument
    (default: the name in lower case); ``extra`` the pip extra of
    mlpotential that lists its requirements, ``core_requirements`` the names
    of core dependencies it stands on instead; ``without_dependencies`` are
    installed afterwards with ``--no-deps`` (their declared pins conflict
    with torch); ``removable`` are the distributions ``--uninstall`` removes
    (only the backend's own library: its dependencies serve others too);
    ``needs_torch``: it runs on PyTorch.

    Physics: ``uses_total_charge``: its models read the system's total
    charge; a backend without it is neutral-only, and its worker refuses a
    system with a non-zero charge (the energy would be the neutral one's).

    Uncertainty: ``own_uncertainty`` is what one model's ``energy_std``
    means, where it reports one (``"ensemble"``: the spread of its built-in
    members; ``"predictive"``: a Gaussian process's predictive standard
    deviation); several model files are a committee whatever the backend.
    """

    name: str
    models: tuple[str, ...]
    parameter: str | None
    factory: str
    probe: str
    default_units: ModelUnits
    description: str = ""
    built_in_parameter_dir: bool = False
    optional_parameters: tuple[str, ...] = ()
    committee_factory: str | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    fixed_units: bool = False
    install_name: str | None = None
    extra: str | None = None
    core_requirements: tuple[str, ...] = ()
    without_dependencies: tuple[str, ...] = ()
    removable: tuple[str, ...] = ()
    needs_torch: bool = True
    uses_total_charge: bool = False
    own_uncertainty: str = ""

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def built_in_models(self) -> tuple[str, ...]:
        """The Model values that name a model shipped or downloaded, not ``Custom``."""
        return tuple(model for model in self.models if model != CUSTOM)

    @property
    def install_argument(self) -> str:
        """The argument of ``mlpotential install`` that installs this backend."""
        return self.install_name or self.name.lower()


def _module(name: str) -> str:
    return f"mlpotential.backends.{name}"


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            name="TorchANI",
            models=("ANI-2x", "ANI-1ccx", "ANI-1x", CUSTOM),
            parameter="ParameterFile",
            factory=_module("torchani.factory:create_calculator"),
            probe=_module("torchani.probe:probe"),
            default_units=ModelUnits("Hartree", "angstrom"),
            description="ANI-1x, ANI-1ccx, ANI-2x ensembles (torchani)",
            built_in_parameter_dir=True,
            own_uncertainty="ensemble",
            extra="torchani",
            removable=("torchani",),
        ),
        BackendSpec(
            name="SchNetPack",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory=_module("schnetpack.factory:create_calculator"),
            probe=_module("schnetpack.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="SchNet/PaiNN models trained with SchNetPack",
            extra="schnetpack",
            without_dependencies=("schnetpack==2.1.1",),
            removable=("schnetpack",),
        ),
        BackendSpec(
            name="sGDML",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory=_module("sgdml.factory:create_calculator"),
            probe=_module("sgdml.probe:probe"),
            default_units=ModelUnits("kcal/mol", "angstrom"),
            description="sGDML kernel models (.npz)",
            devices=("cpu",),
            extra="sgdml",
            removable=("sgdml",),
        ),
        BackendSpec(
            name="PiNN",
            models=(CUSTOM,),
            parameter="ParameterDir",
            factory=_module("pinn.factory:create_calculator"),
            probe=_module("pinn.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="PiNN model directories (PiNet, BPNN), evaluated in PyTorch",
            extra="pinn",
        ),
        BackendSpec(
            name="HDNNP",
            models=(CUSTOM, "Cu-EMT"),
            parameter="ParameterFile",
            factory=_module("hdnnp.factory:create_calculator"),
            probe=_module("hdnnp.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="native Behler-Parrinello networks (mlpotential train); Cu-EMT is the shipped demo model",
            committee_factory=_module("hdnnp.factory:create_committee"),
            extra="hdnnp",
        ),
        BackendSpec(
            name="GPR",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory=_module("gpr.factory:create_calculator"),
            probe=_module("gpr.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="Gaussian-process surrogates saved by mlpotential gpr",
            extra="gpr",
            own_uncertainty="predictive",
            removable=("dscribe",),
        ),
        BackendSpec(
            name="MACE",
            models=(CUSTOM,),
            parameter="ParameterFile",
            factory=_module("mace.factory:create_calculator"),
            probe=_module("mace.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="MACE equivariant message-passing models (mace-torch)",
            extra="mace",
            removable=("mace-torch",),
        ),
        BackendSpec(
            name="ASE",
            models=("EMT", "LennardJones", CUSTOM),
            parameter="ASECalculatorFile",
            optional_parameters=("ParameterFile", "ParameterDir"),
            factory=_module("ase.factory:create_calculator"),
            probe=_module("ase.probe:probe"),
            default_units=ModelUnits("eV", "angstrom"),
            description="ASE's own EMT and Lennard-Jones, or your own ASE calculator (ASECalculatorFile)",
            fixed_units=True,
            core_requirements=("ase",),
            needs_torch=False,
        ),
    )
}


def install_hint(spec: BackendSpec) -> str:
    """The command that installs what ``spec`` needs."""
    return f"mlpotential install {spec.install_argument}"
