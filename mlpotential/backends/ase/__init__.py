"""Backend ``ASE``: ASE's own EMT and Lennard-Jones calculators with their
default parameters. No machine learning: it checks an installation and lets
the pipe be tested without torch.

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
