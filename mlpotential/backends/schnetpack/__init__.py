"""Backend ``SchNetPack``: a model the user trained with SchNetPack 2
(SchNet, PaiNN, SO3net...), saved the way SchNetPack saves trained models:
``torch.save`` of the whole model, e.g. its ``best_inference_model`` file.

The file is checked before any of it is unpickled: it must be a PyTorch zip
archive whose pickled top-level object is a SchNetPack class. Only then is it
loaded, which runs code from the file (pickle), so only use files you trust.
Evaluation goes through ``schnetpack.interfaces.SpkCalculator``
(:mod:`mlpotential.backends.schnetpack.calculator`).

Units: saved SchNetPack models carry none; ``MLEnergyUnit`` and
``MLDistanceUnit`` say what the model was trained in (Auto: eV, angstrom).

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
