import os

import numpy as np
import pytest

from atlantis.store.atomic import atomic_open, atomic_save_npy, atomic_write_text, file_sha256


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new contents")
    assert p.read_text() == "new contents"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]  # no temp files left


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "good")
    with pytest.raises(RuntimeError), atomic_open(p, "w") as fh:
        fh.write("half")
        raise RuntimeError("killed mid-write")
    assert p.read_text() == "good"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_npy_round_trip_and_hash(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    atomic_save_npy(tmp_path / "x.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), arr)
    assert len(file_sha256(tmp_path / "x.npy")) == 64


def test_atomic_open_rejects_append_mode(tmp_path):
    with pytest.raises(ValueError, match="modes"), atomic_open(tmp_path / "x", "a"):
        pass
