"""Training checkpoints: everything needed to resume exactly, written so a crash loses nothing.

A checkpoint is one ``torch.save`` dict:

* ``model``, ``optimizer``, ``scheduler``, ``scaler`` (fp16), ``loss`` (proxy losses' state);
* ``epoch`` (epochs completed; the sampler's batches are a function of seed and epoch, so
  that is its whole position), ``best`` (epoch and validation R@1 of ``best.pt``),
  ``history`` (the per-epoch metric rows, from which ``metrics.csv`` is rewritten);
* ``rng``: Python, NumPy, torch CPU (and CUDA) generator states, restored before the next
  epoch, so data augmentation and dropout continue as if the run had never stopped;
* ``config`` (the keys that determine the weights), ``config_hash``, ``inputs`` (hashes of
  the stages it trained on) and ``model_info`` (rebuilds the architecture offline).

``last.pt`` is rewritten after every epoch; the one it replaces is kept as ``last.prev.pt``.
Both are written through ``atomic_open`` (temp file, fsync, rename), so a kill leaves either
file whole; a file damaged anyway (disk error, manual truncation) is reported by name and
``load_latest`` falls back to the previous one. ``best.pt`` (model and metadata only, no
optimiser) is rewritten whenever validation R@1 improves. Files are read with
``weights_only=True``: a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlantis.errors import AtlantisError
from atlantis.store.atomic import atomic_open

FORMAT = "atlantis-train-checkpoint"
VERSION = 1
LAST, PREVIOUS, BEST = "last.pt", "last.prev.pt", "best.pt"


class CheckpointError(AtlantisError):
    """A checkpoint is unreadable, or belongs to another config or other training data."""


def rng_state() -> dict[str, Any]:
    """Every random generator training draws from, as plain tensors and tuples."""
    version, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "version": version,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["version"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(path: Path, state: dict[str, Any], *, keep_previous: bool = False) -> None:
    """Write ``state`` atomically; with ``keep_previous`` the old file becomes ``*.prev.pt``."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))  # a crash now leaves .prev for load_latest
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".pt") + ".prev.pt")


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint, or raise ``CheckpointError`` saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip, unpickling, truncation and OS errors alike
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an atlantis training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {state.get('version')}, expected {VERSION}"
        )
    return state


def load_latest(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest readable of ``last.pt`` / ``last.prev.pt``; None when neither exists.

    A damaged ``last.pt`` is reported in a warning and removed (so the next save does not
    rotate it over the good previous file), and training resumes one epoch earlier.
    """
    last, prev = Path(folder) / LAST, Path(folder) / PREVIOUS
    errors = []
    for path in (last, prev):
        if not path.exists():
            continue
        try:
            state = load(path, map_location)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; resuming from {path} instead", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            last.unlink(missing_ok=True)
            os.replace(path, last)
        return state
    if errors:
        raise CheckpointError(
            "no readable checkpoint to resume from: "
            + "; ".join(errors)
            + ". Delete them or re-run with --force to train from scratch"
        )
    return None


def check_compatible(state: dict[str, Any], config: dict[str, Any], inputs: dict[str, str],
                     path: Path | str = "checkpoint") -> None:  # fmt: skip
    """Refuse a checkpoint trained with another config or on other data, listing the keys."""
    theirs = state.get("config", {})
    diffs = [f"{k}: {theirs.get(k)!r} -> {config.get(k)!r}"
             for k in sorted(set(theirs) | set(config))
             if theirs.get(k) != config.get(k)]  # fmt: skip
    old_inputs = state.get("inputs", {})
    diffs += [f"input {k}: {old_inputs.get(k)} -> {inputs.get(k)}"
              for k in sorted(set(old_inputs) | set(inputs))
              if old_inputs.get(k) != inputs.get(k)]  # fmt: skip
    if diffs:
        raise CheckpointError(
            f"{path} was trained with a different config or data ({'; '.join(diffs)}). "
            "Restore those settings to resume it, or pass --force to train from scratch"
        )


def load_model(path: Path | str, device: str | torch.device = "cpu"):  # -> EmbeddingModel
    """The trained model of a checkpoint (``best.pt`` or ``last.pt``), in eval mode."""
    from atlantis.train.model import model_from_info

    state = load(Path(path))
    model = model_from_info(state["model_info"])
    model.load_state_dict(state["model"])
    return model.eval().to(device)
