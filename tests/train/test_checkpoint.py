"""Checkpoint files: atomic rotation, readable errors, config checks, generator states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from atlantis.train import checkpoint as ckpt
from atlantis.train.checkpoint import CheckpointError


def test_save_rotates_the_previous_file_and_leaves_no_temp_files(tmp_path) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.save(path, {"epoch": 1}, keep_previous=True)
    ckpt.save(path, {"epoch": 2}, keep_previous=True)
    assert ckpt.load(path)["epoch"] == 2
    assert ckpt.load(tmp_path / ckpt.PREVIOUS)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.PREVIOUS, ckpt.LAST]
    assert ckpt.load_latest(tmp_path)["epoch"] == 2
    assert ckpt.load_latest(tmp_path / "empty") is None


def test_a_kill_between_rotation_and_write_falls_back(tmp_path) -> None:
    ckpt.save(tmp_path / ckpt.PREVIOUS, {"epoch": 4})  # last.pt renamed away, new one not written
    assert ckpt.load_latest(tmp_path)["epoch"] == 4


def test_unreadable_and_foreign_files_are_named(tmp_path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match=r"junk\.pt: corrupt or truncated"):
        ckpt.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an atlantis training checkpoint"):
        ckpt.load(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.load(tmp_path / "missing.pt")


def test_files_load_without_running_code(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "x": Evil()}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load(tmp_path / "e.pt")


def test_rng_states_round_trip(tmp_path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.save(tmp_path / "s.pt", {"rng": ckpt.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_check_compatible_lists_every_difference() -> None:
    state = {"config": {"lr": 1e-5, "epochs": 10}, "inputs": {"ingest": "aa"}}
    ckpt.check_compatible(state, {"lr": 1e-5, "epochs": 10}, {"ingest": "aa"})
    with pytest.raises(CheckpointError) as err:
        ckpt.check_compatible(state, {"lr": 3e-5, "epochs": 10, "seed": 1},
                              {"ingest": "bb"}, "RUN/train/baseline/last.pt")  # fmt: skip
    message = str(err.value)
    assert "RUN/train/baseline/last.pt" in message and "lr: 1e-05 -> 3e-05" in message
    assert "seed: None -> 1" in message and "input ingest: aa -> bb" in message
