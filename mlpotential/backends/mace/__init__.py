"""Backend ``MACE``: equivariant message-passing models trained with MACE
(the ``mace-torch`` package), served through MACE's own ASE calculator.

``ParameterFile`` is the model file MACE's training writes (``NAME.model``,
a ``torch.save`` of the whole model: loading it unpickles, that is runs,
code from the file, so the worker logs a warning naming it and strict mode
refuses it). The model's own dtype decides float32 or float64 (the log says
which); its atomic numbers decide the elements it accepts. Units: MACE
models are trained in eV and Angstrom unless ``MLEnergyUnit`` and
``MLDistanceUnit`` say otherwise. Periodic systems get the stress.

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
