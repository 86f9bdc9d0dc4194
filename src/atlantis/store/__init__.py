"""The run store: one folder per run, one sub-folder per stage, atomic writes, resume."""

from atlantis.store.atomic import atomic_write_bytes, atomic_write_text, file_sha256
from atlantis.store.run import Run, StageContext, StageManifest

__all__ = [
    "Run",
    "StageContext",
    "StageManifest",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
]
