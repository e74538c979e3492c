"""Our TensorFlow-free checkpoint reader against what TensorFlow itself
listed for the reference checkpoints (checkpoint_variables.txt, written by
tf.train.list_variables), known constants, and damaged or missing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlpotential.backends.pinn.checkpoint import Checkpoint, CheckpointError, latest_checkpoint
from mlpotential.backends.pinn.crc32c import crc32c, unmask
from tests.backends.pinn_reference import writable_copy

MODELS = {"pinet": 20000, "bpnn": 20000, "pinet_gaussian": 15000}


def tensorflow_listing(folder: Path) -> dict[str, tuple[int, ...]]:
    listing = {}
    for line in (folder / "checkpoint_variables.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")[:2]
        listing[name] = tuple(int(n) for n in shape.strip("[]").split(",") if n.strip())
    return listing


def test_crc32c_standard_check_value() -> None:
    # The CRC-32C catalogue check value of the ASCII digits 1..9.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_unmask_inverts_leveldb_masking() -> None:
    crc = crc32c(b"pinn")
    masked = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert unmask(masked) == crc


@pytest.mark.parametrize("model", MODELS)
def test_every_variable_and_shape_as_tensorflow_lists_them(pinn_reference_root: Path, model: str) -> None:
    folder = pinn_reference_root / model
    checkpoint = Checkpoint(latest_checkpoint(folder / "model"))
    listing = tensorflow_listing(folder)
    assert {name: entry.shape for name, entry in checkpoint.entries.items()} == listing
    values = checkpoint.read_many(checkpoint.entries)
    assert all(values[name].shape == shape for name, shape in listing.items())


@pytest.mark.parametrize(("model", "step"), MODELS.items())
def test_known_values(pinn_reference_root: Path, model: str, step: int) -> None:
    checkpoint = Checkpoint(latest_checkpoint(pinn_reference_root / model / "model"))
    assert checkpoint.prefix.name == f"model.ckpt-{step}"
    global_step = checkpoint.read("global_step")
    assert global_step.dtype == np.int64 and int(global_step) == step
    # Keras Adam's defaults, stored by the optimizer as float32 scalars.
    assert checkpoint.read("TRAIN_OP/Adam/beta_1") == np.float32(0.9)
    assert checkpoint.read("TRAIN_OP/Adam/beta_2") == np.float32(0.999)
    assert checkpoint.read("TRAIN_OP/Adam/decay") == np.float32(0.0)
    kernels = [name for name in checkpoint.entries if name.endswith("kernel") and not name.startswith("TRAIN_OP")]
    assert all(checkpoint.read(name).dtype == np.float32 for name in kernels)


def test_weights_are_trained_not_initial(pinn_reference_root: Path) -> None:
    """Adam's first moment of a trained weight is small but not zero, and the
    weight itself is finite: the reader finds each tensor at its own offset."""
    checkpoint = Checkpoint(latest_checkpoint(pinn_reference_root / "pinet" / "model"))
    name = "pi_net/gc_block/ff_layer_1/dense/kernel"
    weight, moment = checkpoint.read(name), checkpoint.read(f"TRAIN_OP/Adam/{name}/m")
    assert np.isfinite(weight).all() and weight.std() > 0.01
    assert 0 < np.abs(moment).max() < np.abs(weight).max()
    assert not np.array_equal(weight, moment)


@pytest.fixture
def model_copy(pinn_reference_root: Path, tmp_path: Path) -> Path:
    return writable_copy(pinn_reference_root / "pinet" / "model", tmp_path / "model")


def test_state_file_paths(model_copy: Path) -> None:
    state = model_copy / "checkpoint"
    assert latest_checkpoint(model_copy) == model_copy / "model.ckpt-20000"
    state.write_text(f'model_checkpoint_path: "{model_copy / "model.ckpt-20000"}"\n')
    assert latest_checkpoint(model_copy) == model_copy / "model.ckpt-20000"
    # Trained elsewhere, then moved: the stale absolute path falls back to the directory.
    state.write_text('model_checkpoint_path: "/no/such/place/model.ckpt-20000"\n')
    assert latest_checkpoint(model_copy) == model_copy / "model.ckpt-20000"
    state.write_text('all_model_checkpoint_paths: "x"\n')
    with pytest.raises(CheckpointError, match="no model_checkpoint_path"):
        latest_checkpoint(model_copy)


def test_missing_files_are_named(model_copy: Path) -> None:
    (model_copy / "model.ckpt-20000.index").unlink()
    with pytest.raises(CheckpointError, match=r"model\.ckpt-20000\.index is missing"):
        Checkpoint(latest_checkpoint(model_copy))
    (model_copy / "checkpoint").unlink()
    with pytest.raises(CheckpointError, match="checkpoint is missing"):
        latest_checkpoint(model_copy)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_tensor_fails_its_checksum(model_copy: Path) -> None:
    checkpoint = Checkpoint(model_copy / "model.ckpt-20000")
    entry = checkpoint.entries["pi_net/res_update/dense_18/kernel"]
    flip_byte(model_copy / "model.ckpt-20000.data-00000-of-00001", entry.offset + 5)
    with pytest.raises(CheckpointError, match="checksum mismatch for variable pi_net/res_update/dense_18/kernel"):
        checkpoint.read(entry.name)
    checkpoint.read("pi_net/out_layer/dense_11/kernel")  # the others are intact


def test_damaged_index_fails_its_block_checksum(model_copy: Path) -> None:
    flip_byte(model_copy / "model.ckpt-20000.index", 40)
    with pytest.raises(CheckpointError, match="checksum mismatch in the block"):
        Checkpoint(model_copy / "model.ckpt-20000")


def test_a_file_that_is_no_table(model_copy: Path) -> None:
    (model_copy / "model.ckpt-20000.index").write_text("params: not a table\n" * 5)
    with pytest.raises(CheckpointError, match="not a LevelDB sorted table"):
        Checkpoint(model_copy / "model.ckpt-20000")
