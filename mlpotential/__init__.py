"""mlpotential: machine-learned potentials served over the AMS-compatible pipe protocol."""

__version__ = "0.1.0"
