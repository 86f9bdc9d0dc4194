"""The ``hf`` layout: Hugging Face data, as Parquet files or a ``datasets`` ``save_to_disk`` folder.

Where the tables are and how their splits are named: :mod:`atlantis.data.readers.hf_tables`.
Columns (``data.hf`` options, :class:`atlantis.config.HfOptions`; by default ``image``,
``label``, ``caption``, ``domain``, or one unambiguous common other name):

- image: a ``datasets`` ``Image`` (a struct of ``bytes`` and ``path``), plain bytes, or a
  path string relative to the root. Bytes become files once, named by their content
  (:mod:`atlantis.data.readers.image_store`); a re-read writes nothing.
- label: integers, named by the column's ``ClassLabel`` names when the features give them
  (classes then follow the ``ClassLabel`` order), or strings (order of first appearance).
- caption and domain (optional): a string or a list of strings.

Splits: each record keeps its split's name as ``meta["hf_split"]``. When the splits are
train-side (``train``, ``validation``, ...) and ``test``, and their classes are disjoint
(a zero-shot split, like SOP's), the dataset declares it (``Dataset.official_split``) and
the ``zsl`` rule uses it; otherwise (an image split: the same classes in both) ATLANTIS
assigns splits itself, as for CUB's official train flag. Row numbers in errors count from 0
in each table, as ``dataset[row]`` does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from atlantis.config import HfOptions
from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, resolve_under_root
from atlantis.data.readers.hf_tables import Table, find_tables
from atlantis.data.readers.image_store import ImageStore
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

logger = logging.getLogger(__name__)

#: Per role: the default name first, then other common names, used only when just one is there.
NAMES = {
    "image": ("image", "img", "image_path", "image_file", "file_name"),
    "label": ("label", "labels", "class", "fine_label", "label_id", "class_id", "category"),
    "caption": ("caption", "captions"),
    "domain": ("domain", "domains"),
}
FEATURE_TYPE = {"image": "Image", "label": "ClassLabel"}  # also found by their feature type
TRAIN_SIDE = frozenset({"train", "validation", "valid", "val", "dev"})


@READERS.register("hf")
def read_hf(
    root: Path,
    *,
    skip_bad: bool = False,
    verify_images: bool = True,
    options: HfOptions | dict[str, Any] | None = None,
) -> Dataset:
    """Hugging Face data: Parquet files or a save_to_disk folder (image, label[, caption, domain])."""
    opts = HfOptions.model_validate(options or {})
    base, tables = find_tables(root)
    tables = _chosen_splits(tables, opts.split, root)
    store = ImageStore(base)
    bad = BadItems(skip_bad)
    rows: list[tuple[Path, ImageRecord]] = []
    order: dict[str, tuple[int, float]] = {}  # label -> sort key: ClassLabel, number, first seen
    for table in tables:
        rows += _read_table(table, opts, base, store, bad, order, verify_images)
    if store.used and not store.inside_root:
        base = _move_paths_to_store(rows, store, bad)
    records = [rec.model_copy(update={"path": full.relative_to(base).as_posix()})
               for full, rec in rows]  # fmt: skip
    if store.written:
        logger.info("wrote %d image file(s) to %s", store.written, store.folder)
    official = _official_split(records)
    if official:
        for rec in records:
            rec.meta["official_split"] = "test" if rec.meta["hf_split"] == "test" else "train"
    classes = sorted({r.label for r in records}, key=lambda c: order[c])
    return Dataset(format="hf", root=base, classes=classes, records=records,
                   official_split=official, skipped=bad.skipped)  # fmt: skip


def _chosen_splits(tables: list[Table], wanted: str | None, root: Path) -> list[Table]:
    if wanted is None:
        return tables
    names = [s.strip() for s in wanted.split(",") if s.strip()]
    have = sorted({t.split for t in tables if t.split is not None})
    unknown = [n for n in names if n not in have]
    if unknown:
        raise DataError(
            f"data.hf.split names split(s) {unknown} the data does not have; its splits: "
            f"{have or 'none (no split names in the files)'}",
            root,
        )
    return [t for t in tables if t.split in names]


def _read_table(
    table: Table,
    opts: HfOptions,
    base: Path,
    store: ImageStore,
    bad: BadItems,
    order: dict[str, tuple[int, float]],
    verify: bool,
) -> list[tuple[Path, ImageRecord]]:
    """Records of one table, each with its image's absolute path."""
    columns = {role: _column(role, getattr(opts, f"{role}_column"), table) for role in NAMES}
    image, label = columns["image"], columns["label"]
    assert image is not None and label is not None  # required roles raise when missing
    _check_types(table, columns)
    names = table.features.get(label, {}).get("names")
    wanted = [c for c in columns.values() if c is not None]
    out: list[tuple[Path, ImageRecord]] = []
    row = -1
    for batch in table.batches(list(dict.fromkeys(wanted))):
        for values in batch.to_pylist():
            row += 1
            where = f"{table.source} row {row}"
            with bad.guard(path=where):
                name, key = _label(values[label], names, where)
                full, meta = _image(values[image], base, store, where)
                check_image(full, where, verify=verify)
                split = "" if table.split is None else f"{table.split}-"
                rec = ImageRecord(
                    id=f"hf-{split}{row}",
                    path=full.name,  # made relative to the dataset root at the end
                    label=name,
                    captions=_strings(values, columns["caption"], where, None),
                    domains=_strings(values, columns["domain"], where, ";"),
                    meta={**meta, "hf_split": table.split, "hf_row": row},
                )
                bad.claim_id(rec.id, where)
                order.setdefault(name, key if key[0] < 2 else (2, len(order)))
                out.append((full, rec))
    return out


def _column(role: str, chosen: str | None, table: Table) -> str | None:
    """The column playing ``role``: the one the options name, else the default or one alternative."""
    option = f"data.hf.{role}_column"
    if chosen is not None:
        if chosen not in table.types:
            raise DataError(
                f"no column {chosen!r} (set by {option}); columns found: {table.columns}",
                table.source,
            )
        return chosen
    names = NAMES[role]
    if names[0] in table.types:
        return names[0]
    found = [c for c in names[1:] if c in table.types]
    if not found and role in FEATURE_TYPE:
        typed = {
            c
            for c, f in table.features.items()
            if isinstance(f, dict) and f.get("_type") == FEATURE_TYPE[role]
        }
        found = [c for c in table.columns if c in typed]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(
            f"no {names[0]!r} column, and {len(found)} columns could be the {role}: {found}; "
            f"set {option} to the one to use (columns found: {table.columns})",
            table.source,
        )
    if role in ("caption", "domain"):
        return None
    raise DataError(
        f"no {role} column: expected {names[0]!r} (or one of {list(names[1:])}); columns "
        f"found: {table.columns}; set {option} to the column holding the {role}s",
        table.source,
    )


def _check_types(table: Table, columns: dict[str, str | None]) -> None:
    """Refuse a column whose type cannot play its role, before reading any row."""
    import pyarrow as pa  # present: find_tables needed it (alone, or through datasets)

    expected = {
        "image": "a datasets Image (struct of bytes and path), binary bytes, or a path string",
        "label": "integers (with ClassLabel names in the features) or strings",
        "caption": "strings or lists of strings",
        "domain": "strings or lists of strings",
    }
    for role, column in columns.items():
        if column is None:
            continue
        t = table.types[column]
        if pa.types.is_dictionary(t):
            t = t.value_type
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
        if role == "image":
            fields = {f.name for f in t} if pa.types.is_struct(t) else set()
            ok = _is_text(pa, t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
            ok = ok or bool(fields & {"bytes", "path"})
        elif role == "label":
            ok = _is_text(pa, t) or pa.types.is_integer(t)
        else:
            ok = _is_text(pa, t) or (is_list and _is_text(pa, t.value_type))
        if not ok:
            raise DataError(
                f"{role} column {column!r} has type {table.types[column]}; expected "
                f"{expected[role]}: set data.hf.{role}_column to the right column",
                table.source,
            )


def _is_text(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _label(value: Any, names: list[str] | None, where: str) -> tuple[str, tuple[int, float]]:
    """The class name of a label cell, and its sort key (ClassLabel index, number, first seen)."""
    if value is None or value == "":
        raise DataError("label is empty", where)
    if isinstance(value, str):
        return value.strip(), (2, 0)
    if names is None:
        return str(value), (1, value)
    if not 0 <= value < len(names):
        what = "-1, the datasets mark for 'no label'" if value == -1 else f"{value}"
        raise DataError(
            f"label {what} is not one of the {len(names)} ClassLabel classes (0..{len(names) - 1})",
            where,
        )
    return names[value], (0, value)


def _image(value: Any, base: Path, store: ImageStore, where: str) -> tuple[Path, dict[str, Any]]:
    """The image file of an image cell (bytes written to the store), and meta to keep."""
    if isinstance(value, dict):  # a datasets Image: {"bytes": ..., "path": ...}
        data, path = value.get("bytes"), value.get("path")
    else:
        data, path = (value, None) if isinstance(value, bytes) else (None, value)
    if data:
        return store.put(data, where), ({"hf_path": path} if path else {})
    if path:
        return resolve_under_root(base, path, where)[1], {}
    raise DataError("image is empty (no bytes and no path)", where)


def _strings(values: dict[str, Any], column: str | None, where: str, sep: str | None) -> list[str]:
    value = None if column is None else values[column]
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(sep) if sep else [value]
    return [s.strip() for s in items if isinstance(s, str) and s.strip()]


def _move_paths_to_store(
    rows: list[tuple[Path, ImageRecord]], store: ImageStore, bad: BadItems
) -> Path:
    """With the store outside a read-only root, images given by path go into the store too."""
    for i, (full, rec) in enumerate(rows):
        if not full.is_relative_to(store.folder):
            where = f"{full} (record {rec.id})"
            with bad.guard(path=str(full)):
                try:
                    data = full.read_bytes()
                except OSError as e:
                    raise DataError(f"cannot read the image ({e.strerror or e})", where) from None
                rows[i] = (store.put(data, where), rec)
    rows[:] = [(f, r) for f, r in rows if f.is_relative_to(store.folder)]
    return store.folder


def _official_split(records: list[ImageRecord]) -> bool:
    """True when the splits are train-side and test with disjoint classes (a zero-shot split)."""
    sides: dict[str, set[str]] = {"train": set(), "test": set()}
    for rec in records:
        split = rec.meta["hf_split"]
        if split != "test" and split not in TRAIN_SIDE:
            return False
        sides["test" if split == "test" else "train"].add(rec.label)
    return bool(sides["train"] and sides["test"]) and not sides["train"] & sides["test"]
