"""Fixtures of the tests of the shared science (structures, descriptors, neighbour lists)."""

from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)
