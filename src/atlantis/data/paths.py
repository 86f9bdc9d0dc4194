"""Where a record's image file lives.

Real images stay where the user keeps them: their record paths are relative to the
dataset root (``RUN/ingest/dataset.json``). Images the pipeline makes or copies in
(``synthetic``, ``retrieved``) live inside the run folder, and their paths are relative to
the run root (e.g. ``generate/targeted/images/3f/3f9c....png``). This one rule lets every
stage open any record without knowing who made it.
"""

from __future__ import annotations

import json
from pathlib import Path

from atlantis.data.records import ImageRecord
from atlantis.store.run import Run


def dataset_root(run: Run) -> Path:
    desc = json.loads((run.root / "ingest" / "dataset.json").read_text(encoding="utf-8"))
    return Path(desc["root"])


def image_path(run: Run, record: ImageRecord) -> Path:
    return image_paths(run, [record])[0]


def image_paths(run: Run, records: list[ImageRecord]) -> list[Path]:
    """Absolute image paths of ``records`` (the dataset root is read once)."""
    run_root = run.root.resolve()
    data_root = dataset_root(run) if any(r.source == "real" for r in records) else None
    return [(data_root if r.source == "real" else run_root) / r.path for r in records]  # type: ignore[operator]
