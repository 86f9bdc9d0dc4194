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


class InputError(AtlantisError, ValueError):
    """A value the user handed in (an array file, a number, a name) is not valid.

    It subclasses ``ValueError`` as well, so library callers that validate by catching
    ``ValueError`` keep working, while the CLI shows it as one line like every
    ``AtlantisError``. The message names the input (file, option or field) first.
    """

    def __init__(self, message: str, source: Path | str | None = None):
        self.source = str(source) if source is not None else None
        super().__init__(f"{source}: {message}" if source is not None else message)


class StageError(AtlantisError):
    """A stage cannot run: usually its inputs are missing (the message says which command makes them)."""


class StagePaused(AtlantisError):
    """A stage stopped on purpose before its end (e.g. ``train --epochs-this-call``).

    Its work so far is kept, and running the same command again resumes it; the run
    records the stage as ``paused``, not ``failed``.
    """


class DiskFullError(StageError):
    """The disk filled up while a file was written: nothing half-written was kept."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        super().__init__(
            f"{path}: no space left on the device while writing it. Nothing half-written "
            "was kept, and every item finished before it is recorded: free some space (or "
            "move the run folder to a larger disk) and run the same command again to resume"
        )


def raise_if_disk_full(exc: BaseException, path: Path | str) -> None:
    """Turn a full disk or an exhausted quota (``ENOSPC`` / ``EDQUOT``) into ``DiskFullError``."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(path) from exc


class MissingDependencyError(AtlantisError, ImportError):
    """An optional backend's package is not installed: names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'atlantis-augment[{extra}]'"
        )
