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


def test_a_full_disk_is_a_clear_error_and_leaves_the_old_file(tmp_path) -> None:
    import errno

    from atlantis.errors import DiskFullError
    from atlantis.store.atomic import atomic_open, atomic_write_text

    target = tmp_path / "stats.json"
    atomic_write_text(target, "old")
    full = pytest.raises(DiskFullError, match=r"stats\.json: no space left.*run the same command")
    with full, atomic_open(target, "w") as fh:
        fh.write("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]  # no temp file left
