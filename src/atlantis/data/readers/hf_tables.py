"""Find the tables of a ``--format hf`` root: Parquet files, or a ``save_to_disk`` folder.

A root is one of:

- a ``datasets`` ``save_to_disk`` folder (``dataset_dict.json``, one sub-folder per split;
  or ``state.json`` for a single ``Dataset``), loaded with ``datasets`` (the ``datasets``
  extra);
- a ``.parquet`` file, or a folder of them (searched recursively, hidden folders skipped),
  read with ``pyarrow`` alone. The Hugging Face Hub's layouts name the split in the file
  (``data/train-00000-of-00002.parquet``, ``test.parquet``) or in a folder
  (``train/0000.parquet``); files are read in path order.

Each table says where it came from (for errors), its split (or None), its columns and
their types, and the ``datasets`` features (``{"label": {"_type": "ClassLabel", "names":
[...]}}``) from the dataset or the Parquet schema's ``huggingface`` metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlantis.embed.base import import_optional
from atlantis.errors import DataError

BATCH_ROWS = 256
KNOWN_SPLITS = ("train", "validation", "valid", "val", "dev", "test")
SHARD = re.compile(r"^(?P<split>[\w.]+?)-\d{5}-of-\d{5}$")  # train-00000-of-00002
SAVE_TO_DISK_FILES = ("dataset_dict.json", "state.json")


@dataclass
class Table:
    """One table of rows: a Parquet file, or one split of a saved dataset."""

    source: str  # what errors name: the file, or the split's folder
    split: str | None
    types: dict[str, Any]  # column -> pyarrow DataType, in table order
    features: dict[str, Any]  # column -> its datasets feature as JSON ({} when none)
    batches: Callable[[list[str]], Iterator[Any]]  # columns -> pyarrow batches

    @property
    def columns(self) -> list[str]:
        return list(self.types)


def find_tables(root: Path) -> tuple[Path, list[Table]]:
    """The folder image paths are relative to, and the tables under ``root`` in read order."""
    if root.is_dir() and any((root / name).is_file() for name in SAVE_TO_DISK_FILES):
        return root, _saved_tables(root)
    if root.is_file():
        if root.suffix.lower() != ".parquet":
            raise DataError(
                "format 'hf' reads a .parquet file, a folder of them, or a datasets "
                "save_to_disk folder; point --root (data.root) at one of those",
                root,
            )
        return root.parent, [_parquet_table(root, root.parent)]
    files = sorted(
        p
        for p in root.rglob("*.parquet")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(
            "no Parquet files (*.parquet) and no datasets save_to_disk folder "
            f"({' or '.join(SAVE_TO_DISK_FILES)}) here; point --root (data.root) at one",
            root,
        )
    return root, [_parquet_table(f, root) for f in files]


def split_of(relative: Path) -> str | None:
    """The split a Parquet file's path names, the way the HF Hub lays them out; else None."""
    stem = relative.name[: -len(".parquet")]
    shard = SHARD.match(stem)
    if shard:
        return shard["split"]
    for name in KNOWN_SPLITS:
        if stem.lower() == name or re.match(rf"{name}[-_.]", stem, re.IGNORECASE):
            return name
    for folder in reversed(relative.parts[:-1]):
        name = folder.lower().removeprefix("partial-")  # the Hub's parquet conversion
        if name in KNOWN_SPLITS:
            return name
    return None


def _parquet_table(file: Path, base: Path) -> Table:
    pq = import_optional("pyarrow.parquet", "pyarrow", "datasets", "Reading Parquet (--format hf)")
    try:
        pf = pq.ParquetFile(file)
        schema = pf.schema_arrow
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise DataError(f"not a readable Parquet file ({type(e).__name__}: {e})", file) from None

    def batches(columns: list[str]) -> Iterator[Any]:
        return pf.iter_batches(batch_size=BATCH_ROWS, columns=columns)

    return Table(
        source=str(file),
        split=split_of(file.relative_to(base)),
        types={f.name: f.type for f in schema},
        features=_metadata_features(schema.metadata or {}, file),
        batches=batches,
    )


def _metadata_features(metadata: dict[bytes, bytes], file: Path) -> dict[str, Any]:
    """The features ``datasets`` writes into a Parquet schema (``b"huggingface"``); {} if none."""
    raw = metadata.get(b"huggingface")
    if raw is None:
        return {}
    try:
        info = json.loads(raw)
    except ValueError:
        raise DataError("the schema's 'huggingface' metadata is not valid JSON", file) from None
    features = info.get("info", {}).get("features") if isinstance(info, dict) else None
    return features if isinstance(features, dict) else {}


def _saved_tables(root: Path) -> list[Table]:
    datasets = import_optional("datasets", "datasets", "datasets", "Reading a save_to_disk folder")
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception as e:  # a folder datasets cannot read: say so, with its own words
        raise DataError(
            f"datasets cannot load this save_to_disk folder ({type(e).__name__}: {e})", root
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        parts = [(str(name), root / str(name), ds) for name, ds in loaded.items()]
    else:
        split = str(loaded.split) if loaded.split else None
        parts = [(split, root, loaded)]
    return [_saved_table(split, folder, ds) for split, folder, ds in parts]


def _saved_table(split: str | None, folder: Path, ds: Any) -> Table:
    def batches(columns: list[str]) -> Iterator[Any]:
        return ds.select_columns(columns).with_format("arrow").iter(batch_size=BATCH_ROWS)

    return Table(
        source=str(folder),
        split=split,
        types={f.name: f.type for f in ds.data.schema},
        features=ds.features.to_dict(),
        batches=batches,
    )
