"""The exported model folder: its files, writing it atomically, reading and checking it.

Layout of ``DIR``:

* ``model.safetensors``: the ``EmbeddingModel`` state dict (safetensors: loading it cannot
  run code, unlike a pickled ``.pt``);
* ``atlantis-model.json``: ``format`` / ``version`` (what a reader checks first), the
  architecture (``model_info``), the preprocessing, the distance, the provenance and
  ``model_hash``, the sha256 of ``model.safetensors``;
* ``model.onnx`` / ``model.torchscript.pt`` when asked for (``formats``).

The whole folder is built in a hidden temp folder beside ``DIR`` and renamed into place,
so a killed export leaves either the old folder or the complete new one; the JSON is
written last even there. A reader recomputes the weights' sha256: a folder whose weights
were edited or damaged after the export is refused instead of silently giving other
vectors under the same model identity.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atlantis.errors import ConfigError
from atlantis.store.atomic import atomic_write_text, file_sha256, fsync_dir

FORMAT = "atlantis-model"
VERSION = 1
CONFIG_FILE = "atlantis-model.json"
WEIGHTS_FILE = "model.safetensors"


class ModelCard:
    """Read-only views of ``atlantis-model.json`` (``self.config``) that every user of an
    exported model asks for: the embedder before loading, the loaded model after."""

    config: dict[str, Any]

    @property
    def distance(self) -> str:
        """``cosine`` (sphere head) or ``poincare`` (ball head, with ``curvature``)."""
        return str(self.config["distance"])

    @property
    def curvature(self) -> float:
        """The ball's curvature ``c`` for ``poincare``; 0.0 for ``cosine``, where it is unused."""
        return float(self.config["curvature"])

    @property
    def dim(self) -> int:
        return int(self.config["embedding_dim"])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def model_hash(self) -> str:
        """sha256 of ``model.safetensors``: the identity of these weights."""
        return str(self.config["model_hash"])


class ModelFolderError(ConfigError):
    """A folder that is not a usable exported model (missing, unknown version, tampered).

    A ``ConfigError``: ``-e model:DIR`` pointing at such a folder is a bad embedder spec,
    reported in one line like any other.
    """


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that holds something, before any work is done.

    ``--force`` replaces an earlier export only (a folder with ``atlantis-model.json``):
    a mistyped ``--out RUN --force`` must never delete a run or any other folder.
    """
    if out.exists() and not out.is_dir():
        raise ModelFolderError(f"--out {out}: is a file; give a folder to create")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ModelFolderError(
            f"--out {out}: the folder exists and is not empty; pass --force to replace an "
            "earlier export, or give another folder"
        )
    if not (out / CONFIG_FILE).is_file():
        raise ModelFolderError(
            f"--out {out}: holds files but no {CONFIG_FILE}, so it is not an earlier export; "
            "--force replaces exports only. Give another folder or empty this one"
        )


@contextlib.contextmanager
def staging(out: Path, force: bool) -> Iterator[Path]:
    """A hidden temp folder beside ``out``; on a clean exit it becomes ``out``.

    On an error (or a kill) the temp folder is removed (or left hidden, named
    ``.<out>.export-*``, without a usable ``out``) and ``out`` is untouched.
    """
    check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        yield tmp
        fsync_dir(tmp)
        _publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, out: Path, force: bool) -> None:
    check_out(out, force)  # again: another process may have written there meanwhile
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    elif out.is_dir():
        out.rmdir()
    os.replace(tmp, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_weights(state_dict: dict[str, Any], path: Path) -> str:
    """Write a state dict as safetensors (fsync'ed); returns its sha256.

    Tensors are copied into their own contiguous storage: safetensors refuses tensors that
    share memory (tied weights), and the loader re-ties nothing, it just copies values in.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return file_sha256(path)


def write_config(folder: Path, config: dict[str, Any]) -> None:
    atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")


def read_config(folder: Path | str) -> dict[str, Any]:
    """The folder's ``atlantis-model.json``, checked for format and version (no weights read)."""
    folder = Path(folder).expanduser()
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such folder; give a folder made by atlantis export")
    if not path.is_file():
        raise ModelFolderError(
            f"{folder}: no {CONFIG_FILE}, so it is not an exported model; make one with: "
            "atlantis export RUN --arm ARM --out DIR"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: not an {FORMAT} file (its format is "
                               f"{config.get('format') if isinstance(config, dict) else None!r})")  # fmt: skip
    if config.get("version") != VERSION:
        raise ModelFolderError(
            f"{path}: {FORMAT} version {config.get('version')!r}, but this atlantis reads "
            f"version {VERSION} only; load it with the atlantis release that exported it, or "
            "export the run again"
        )
    return config


def checked_weights(folder: Path | str, config: dict[str, Any]) -> Path:
    """``model.safetensors``, after checking its sha256 against ``model_hash``."""
    path = Path(folder).expanduser() / WEIGHTS_FILE
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing; the export is incomplete, export it again")
    actual = file_sha256(path)
    if actual != config.get("model_hash"):
        raise ModelFolderError(
            f"{path}: sha256 {actual[:16]}... differs from the model_hash "
            f"{str(config.get('model_hash'))[:16]}... in {CONFIG_FILE}: the weights were "
            "changed or damaged after the export. Export the run again"
        )
    return path


def load_weights(path: Path) -> dict[str, Any]:
    """The state dict of a ``model.safetensors`` (on the CPU)."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
