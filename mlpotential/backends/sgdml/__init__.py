"""Backend ``sGDML``: a symmetric gradient-domain machine-learning model, the
``.npz`` file that ``sgdml all`` or ``GDMLTrain.train`` +
``np.savez_compressed`` writes.

The file is read with ``allow_pickle=False``: only the plain arrays that a
prediction needs are loaded, so no code from the file runs. Evaluation goes
through ``sgdml.intf.ase_calc.SGDMLCalculator``
(:mod:`mlpotential.backends.sgdml.calculator`).

Units: ``MLEnergyUnit``/``MLDistanceUnit`` are the units of the training
data; Auto means sGDML's own convention, kcal/mol and angstrom. When the
model file records other units (``e_unit``/``r_unit``), a warning says so.

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
