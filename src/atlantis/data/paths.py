"""Where a record's image file lives.

Real images stay where the user keeps them: their record paths are relative to the
dataset root (``RUN/ingest/dataset.json``). Images the pipeline makes or copies in
(``synthetic``, ``retrieved``) live inside the run folder, and their paths are relative to
the run root (e.g. ``generate/targeted/images/3f/3f9c....png``). This one rule lets every
stage open any record without knowing who made it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from atlantis.data.records import ImageRecord
from atlantis.store.run import Run


@cache
def _dataset_root(run_root: Path) -> Path:
    desc = json.loads((run_root / "ingest" / "dataset.json").read_text(encoding="utf-8"))
    return Path(desc["root"])


def image_root(run: Run, record: ImageRecord) -> Path:
    """The folder ``record.path`` is relative to."""
    if record.source == "real":
        return _dataset_root(run.root.resolve())
    return run.root.resolve()


def image_path(run: Run, record: ImageRecord) -> Path:
    return image_root(run, record) / record.path


def image_paths(run: Run, records: list[ImageRecord]) -> list[Path]:
    return [image_path(run, r) for r in records]
