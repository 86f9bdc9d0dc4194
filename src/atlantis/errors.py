"""Exceptions that carry a user-facing message.

The CLI prints these without a traceback: they describe a problem with the user's input
(a file, a field, a value) and say how to fix it. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from pathlib import Path


class AtlantisError(Exception):
    """Base class for errors caused by input the user can fix."""


class DataError(AtlantisError):
    """Bad dataset input: names the file (and line, when known) and what is wrong with it."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class ConfigError(AtlantisError):
    """Bad configuration: names the key and lists what is valid."""


class StageError(AtlantisError):
    """A stage cannot run: usually its inputs are missing (the message says which command makes them)."""


class MissingDependencyError(AtlantisError, ImportError):
    """An optional backend's package is not installed: names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'atlantis-augment[{extra}]'"
        )
