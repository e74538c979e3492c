"""Backend ``PiNN``: PiNN model directories (PiNet, BPNN) evaluated in
PyTorch, with the checkpoint read by our own TensorFlow-free reader.

``ParameterDir`` is the model directory PiNN wrote: ``params.yml``, the
``checkpoint`` state file and the ``model.ckpt-N.index``/``.data-*`` files
it names. See docs/pinn.md for what is supported.
:func:`.random_model.random_pinet_potential` builds a tiny PiNet with random weights in
memory, for smoke tests.

Importing this package is cheap: it imports nothing; the registry names
:mod:`.factory` (engine keywords -> calculator) and :mod:`.probe`.
"""
