"""Backend ``HDNNP``: the engine's own Behler-Parrinello neural network
potential (atom-centred symmetry functions, one network per element), trained
with ``mlpotential train`` and run in the worker.

Modules: :mod:`.factory` (engine keywords -> calculator), :mod:`.calculator`,
:mod:`.network`, :mod:`.model_file`, :mod:`.config`, :mod:`.training`
(one code path for one process or many), :mod:`.training_descriptors` (what
training reads), :mod:`.descriptor_store`, :mod:`.ranks` (the processes of a
run: torch.distributed), :mod:`.sharding` (which rank trains on what),
:mod:`.processes` (child processes: start, fail fast, one-line errors),
:mod:`.parallel_training` (``--nproc`` ranks, committees), :mod:`.parity`,
:mod:`.probe`. The descriptor
(symmetry functions, cutoffs, neighbour lists) and the structure readers are
shared science in :mod:`mlpotential.atomistic`. User documentation:
docs/hdnnp.md.

Importing this package is cheap: it imports nothing.
"""
