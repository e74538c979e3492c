"""Frames over a real pipe: native int32 length + payload."""

from __future__ import annotations

import os
import struct
import threading

import pytest

from mlpotential.protocol.framing import MAX_FRAME_SIZE, FrameReader, FrameTooLarge, TruncatedFrame, write_frames


@pytest.fixture
def pipe():
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        try:
            os.close(fd)
        except OSError:
            pass


def test_frames_round_trip_larger_than_the_pipe_buffer(pipe):
    read_fd, write_fd = pipe
    big = bytes(range(256)) * 1000  # larger than the 64 KiB pipe buffer: arrives in pieces

    def writer():
        write_frames(write_fd, [b"abc", b"", big])
        os.close(write_fd)

    thread = threading.Thread(target=writer)
    thread.start()
    reader = FrameReader(read_fd)
    assert reader.read_frame() == b"abc"
    assert reader.read_frame() == b""
    assert reader.read_frame() == big
    assert reader.read_frame() is None
    thread.join()


def test_length_is_native_int32(pipe):
    read_fd, write_fd = pipe
    write_frames(write_fd, [b"hello"])
    assert os.read(read_fd, 9) == struct.pack("=i", 5) + b"hello"


@pytest.mark.parametrize("length", [-1, MAX_FRAME_SIZE + 1])
def test_corrupt_lengths(pipe, length):
    read_fd, write_fd = pipe
    os.write(write_fd, struct.pack("=i", length))
    with pytest.raises(FrameTooLarge):
        FrameReader(read_fd).read_frame()


@pytest.mark.parametrize("data", [b"\x05\x00", struct.pack("=i", 10) + b"short"])
def test_end_of_file_inside_a_frame(pipe, data):
    read_fd, write_fd = pipe
    os.write(write_fd, data)
    os.close(write_fd)
    with pytest.raises(TruncatedFrame):
        FrameReader(read_fd).read_frame()
