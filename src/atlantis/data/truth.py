"""A retrieval pool's truth file: each pool image's real class and domain.

Only the report reads it (``atlantis.report.fidelity``): neither the planner nor the
image source ever sees it, so it can measure whether the source delivered what the plan
asked for without leaking into what is measured. Two formats, chosen by suffix:

* JSON Lines (any suffix but ``.csv``): ``{"file": "google/1f600.png", "class": "face-smiling",
  "domain": "google"}`` per line, ``domain`` optional (or null);
* CSV with a header row naming ``file``, ``class`` and optionally ``domain``.

``file`` is the image's path relative to the pool folder, POSIX, as the retrieval source
records it (``provenance.params["pool_file"]``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from atlantis.errors import DataError

__all__ = ["TruthEntry", "check_truth_classes", "load_truth", "missing_truth", "unknown_classes"]

#: How many names an error lists before it says "and N more".
SHOW = 10


@dataclass(frozen=True)
class TruthEntry:
    """What one pool image really shows."""

    class_name: str
    domain: str | None = None


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOW])
    return shown + (f" and {len(names) - SHOW} more" if len(names) > SHOW else "")


def _rows(path: Path) -> Iterable[tuple[int, Any]]:
    """(line number, row) pairs; a row is a dict, or something else to complain about."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = set(reader.fieldnames or [])
        if not {"file", "class"} <= fields:
            raise DataError(f"the CSV header names {sorted(fields)}; it needs the columns "
                            "file and class (and optionally domain)", path, 1)  # fmt: skip
        for i, row in enumerate(reader, start=2):
            yield i, row
        return
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg}); each line is one object "
                            '{"file": ..., "class": ..., "domain": ...}', path, i) from None  # fmt: skip


def _text(row: dict, key: str, path: Path, line: int, *, required: bool) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{key!r} is missing or empty; every row names the pool image's "
                            "file and its true class", path, line)  # fmt: skip
        return None
    if not isinstance(value, str):
        raise DataError(f"{key!r} is {value!r}, not a string", path, line)
    return value.strip()


def load_truth(path: Path, pool: Path | None = None) -> dict[str, TruthEntry]:
    """The truth file at ``path`` as ``{pool file: TruthEntry}``.

    Every error names the file and line. With ``pool``, rows naming files that are not in
    the pool folder are refused, listed (a truth file for another pool, or stale paths).
    """
    if not path.is_file():
        raise DataError("the truth file does not exist; write one row per pool image "
                        '({"file", "class", "domain"}) or drop loop.pool_truth', path)  # fmt: skip
    truth: dict[str, TruthEntry] = {}
    for line, row in _rows(path):
        if not isinstance(row, dict):
            raise DataError(f"a row is {type(row).__name__}, not an object with file, class "
                            "and domain", path, line)  # fmt: skip
        file = _text(row, "file", path, line, required=True)
        assert file is not None
        rel = PurePosixPath(file)
        if rel.is_absolute() or ".." in rel.parts or "\\" in file:
            raise DataError(f"file {file!r} must be a POSIX path relative to the pool folder "
                            "(no leading '/', no '..')", path, line)  # fmt: skip
        if file in truth:
            raise DataError(f"file {file!r} appears twice; give each pool image one row",
                            path, line)  # fmt: skip
        name = _text(row, "class", path, line, required=True)
        assert name is not None
        truth[file] = TruthEntry(name, _text(row, "domain", path, line, required=False))
    if not truth:
        raise DataError("the truth file has no rows", path)
    if pool is not None:
        absent = sorted(f for f in truth if not (pool / f).is_file())
        if absent:
            raise DataError(f"{len(absent)} of its {len(truth)} rows name files that are not "
                            f"in the pool {pool}: {_listing(absent)}; fix the paths (relative "
                            "to the pool folder) or remove those rows", path)  # fmt: skip
    return truth


def missing_truth(truth: dict[str, TruthEntry], files: Iterable[str]) -> list[str]:
    """The ``files`` (pool paths) that have no row in ``truth``, sorted, each once."""
    return sorted({f for f in files if f not in truth})


def unknown_classes(truth: dict[str, TruthEntry], known: Iterable[str]) -> list[str]:
    """Truth classes outside ``known`` (e.g. the dataset's): not wrong in itself (a pool may
    hold other things), but worth saying when a truth file uses another naming."""
    names = set(known)
    return sorted({e.class_name for e in truth.values()} - names)


def _folded(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def check_truth_classes(truth: dict[str, TruthEntry], classes: Iterable[str],
                        path: Path) -> str | None:  # fmt: skip
    """Refuse a truth file whose classes are not named as the dataset names its classes.

    A pool may hold things no class is (distractors), so some unknown classes are fine and
    only noted (the returned sentence; they count as the wrong class). But when *no* truth
    class is a dataset class, or an unknown one differs from a dataset class only in case or
    punctuation (``Animal Mammal`` for ``animal-mammal``), fidelity would silently read 0 %:
    that raises ``DataError`` naming the classes and the fix.
    """
    known = sorted(set(classes))
    unknown = unknown_classes(truth, known)
    if not unknown:
        return None
    folded = {_folded(c): c for c in known}
    renamed = [f"{u!r} (the dataset's {folded[_folded(u)]!r})" for u in unknown
               if _folded(u) in folded]  # fmt: skip
    if renamed:
        raise DataError(f"{len(renamed)} truth class(es) are dataset classes spelled another "
                        f"way: {_listing(renamed)}; write them exactly as the dataset names "
                        "them", path)  # fmt: skip
    in_truth = {e.class_name for e in truth.values()}
    if len(unknown) == len(in_truth):
        raise DataError(f"none of the truth file's {len(in_truth)} class(es) is a class of "
                        f"the dataset ({_listing(unknown)}; the dataset has "
                        f"{_listing(known)}); name each image's class as the dataset does",
                        path)  # fmt: skip
    n = sum(1 for e in truth.values() if e.class_name in set(unknown))
    return (
        f"pool truth: {n} image(s) of {len(unknown)} class(es) the dataset does not have "
        f"({_listing(unknown)}) count as the wrong class for every plan item"
    )


def describe_missing(files: list[str], path: Path) -> DataError:
    """The error for sourced images the truth file does not describe."""
    return DataError(f"{len(files)} sourced pool image(s) have no row: {_listing(files)}; add "
                     "their true class and domain so fidelity can be measured", path)  # fmt: skip
