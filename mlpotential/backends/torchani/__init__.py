"""Backend ``TorchANI``: the published ANI-2x, ANI-1ccx and ANI-1x ensembles
(8 networks each) and Custom torchani models, evaluated with torchani.

Built-in models are read from NeuroChem parameter files found as described in
:mod:`mlpotential.backends.torchani.parameters` (ParameterDir, $TORCHANI_DATA_DIR,
the folder recorded by ``mlpotential install --ani-parameters``, torchani's
own download) and converted once into a cache
(:mod:`mlpotential.backends.torchani.model_cache`).

``Model Custom`` reads ``ParameterFile``, a file whose
``torch.load(f)["model"]`` is a module called as ``model((species,
coordinates))`` (the AMS convention). Loading it unpickles, that is runs, code
from the file: only for files the user trusts. No energy shifter is read
besides the model, so its energies are whatever the module outputs.

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
