"""Backend ``GPR``: Gaussian-process surrogates trained on energies and forces
(the aenet-gpr method), with predictive uncertainties.

``mlpotential gpr train.in`` trains, tests and augments (:mod:`.workflow`);
with ``Train_model_save True`` it writes a model file that ``Backend GPR`` /
``ParameterFile`` serves (:mod:`.factory`).

Importing this package is cheap: it imports nothing.
"""
