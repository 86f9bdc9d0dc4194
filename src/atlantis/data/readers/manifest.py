"""The ``manifest`` layout: a CSV or JSONL file listing ``path,label`` (and more) per image.

For data whose folders do not encode the class, or that already has captions or domains.
The manifest is ``manifest.csv``, ``manifest.jsonl``, ``metadata.csv`` or ``metadata.jsonl``
under root (first found), or root is the manifest file itself; paths are relative to the
folder holding it. Columns: ``path``, ``label`` (required); ``id`` (default: the path);
``caption`` (JSONL also ``captions``: a list); ``domain`` (``;``-separated; JSONL also
``domains``: a list); ``split``, which is kept only as ``meta["manifest_split"]``, because
ATLANTIS assigns splits itself with its zero-/few-shot rules. Any other column goes to
``meta`` unchanged. Class order is the order labels first appear.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, resolve_under_root, utf8_text
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "metadata.csv", "metadata.jsonl")
REQUIRED = ("path", "label")
KNOWN = frozenset({"path", "label", "id", "caption", "captions", "domain", "domains", "split"})
SPLITS = frozenset({"train", "val", "test"})

Row = dict[str, Any] | DataError


@READERS.register("manifest")
def read_manifest(root: Path, *, skip_bad: bool = False, verify_images: bool = True) -> Dataset:
    """Manifest: a CSV/JSONL file of path,label[,caption,domain,id,split] rows."""
    file = _find_manifest(root)
    base = file.parent
    rows = _jsonl_rows(file) if file.suffix.lower() == ".jsonl" else _csv_rows(file)
    bad = BadItems(skip_bad)
    classes: dict[str, None] = {}  # insertion-ordered set: first appearance
    records: list[ImageRecord] = []
    for line, row in rows:
        raw_path = row.get("path") if isinstance(row, dict) else None
        with bad.guard(path=raw_path if isinstance(raw_path, str) else None):
            if isinstance(row, DataError):
                raise row
            rec = _record(row, base, file, line)
            bad.claim_id(rec.id, file, line)
            check_image(base / rec.path, file, line, verify=verify_images)
            records.append(rec)
            classes.setdefault(rec.label)
    return Dataset(
        format="manifest", root=base, classes=list(classes), records=records, skipped=bad.skipped
    )


def _find_manifest(root: Path) -> Path:
    """The manifest: ``root`` itself when it is a file, else the first of MANIFEST_NAMES in it."""
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".jsonl"):
            raise DataError(
                "is not a manifest (a .csv or .jsonl file); point --root (data.root) at the "
                f"manifest file, or at the folder holding one of {', '.join(MANIFEST_NAMES)}",
                root,
            )
        return root
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    raise DataError(f"no manifest file found; expected one of {', '.join(MANIFEST_NAMES)}", root)


def _csv_rows(file: Path) -> Iterator[tuple[int, Row]]:
    """Yield ``(line number, row or its error)``; a header lacking a required column stops."""
    # -sig: Excel writes a BOM
    with utf8_text(file), open(file, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        found = [c.strip() for c in reader.fieldnames or []]
        _require_columns(found, file, None)
        reader.fieldnames = found
        for row in reader:
            if None in row:  # csv puts extra cells under the key None
                yield (
                    reader.line_num,
                    DataError(
                        f"row has more cells than the header's {len(found)} columns",
                        file,
                        reader.line_num,
                    ),
                )
            elif any(v.strip() for v in row.values() if v):  # skip blank lines
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def _jsonl_rows(file: Path) -> Iterator[tuple[int, Row]]:
    """Yield ``(line number, row or its error)``: a bad line is one bad item, not a bad file."""
    with utf8_text(file), open(file, encoding="utf-8-sig") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                yield line, DataError(f"not valid JSON ({e.msg})", file, line)
                continue
            if not isinstance(row, dict):
                yield line, DataError("each line must be a JSON object", file, line)
                continue
            row = {k: v for k, v in row.items() if v is not None}  # null means "not given"
            try:
                _require_columns(list(row), file, line)
            except DataError as e:
                yield line, e
                continue
            yield line, row


def _require_columns(found: list[str], file: Path, line: int | None) -> None:
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise DataError(
            f"missing required column(s) {missing}; columns found: {found}; "
            f"a manifest needs {', '.join(REQUIRED)} (optional: caption, domain, id, split)",
            file,
            line,
        )


def _record(row: dict[str, Any], base: Path, file: Path, line: int) -> ImageRecord:
    """Turn one manifest row into a record; any bad value names the file and line."""
    raw_path = _text(row, "path", file, line)
    label = _text(row, "label", file, line)
    rel, _ = resolve_under_root(base, raw_path, file, line)
    meta: dict[str, Any] = {k: v for k, v in row.items() if k not in KNOWN}
    if "split" in row:
        split = _text(row, "split", file, line)
        if split not in SPLITS:
            raise DataError(f"split {split!r} is not one of {sorted(SPLITS)}", file, line)
        meta["manifest_split"] = split
    return ImageRecord(
        id=_text(row, "id", file, line) if "id" in row else rel,
        path=rel,
        label=label,
        captions=_strings(row, "caption", "captions", file, line, separator=None),
        domains=_strings(row, "domain", "domains", file, line, separator=";"),
        meta=meta,
    )


def _text(row: dict[str, Any], key: str, file: Path, line: int) -> str:
    value = row.get(key)
    if value is None:
        raise DataError(f"column {key!r} is empty", file, line)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSONL labels or ids written as numbers
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"column {key!r} must be a non-empty string, got {value!r}", file, line)
    return value.strip()


def _strings(
    row: dict[str, Any], one: str, many: str, file: Path, line: int, *, separator: str | None
) -> list[str]:
    """Collect ``row[one]`` then ``row[many]``: each a string (split on ``separator``) or a list."""
    out: list[str] = []
    for key in (one, many):
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = value.split(separator) if separator else [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(
                f"{key!r} must be a string or a list of strings, got {value!r}", file, line
            )
        out += [v.strip() for v in value if v.strip()]
    return out
