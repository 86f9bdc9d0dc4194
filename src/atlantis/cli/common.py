"""Helpers shared by the CLI commands: config resolution, error display, number parsing."""

from __future__ import annotations

import functools
import linecache
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from atlantis.config import AtlantisConfig, load_config, save_config
from atlantis.errors import AtlantisError, ConfigError, InputError
from atlantis.registry import UnknownNameError
from atlantis.store.run import Run

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

#: Set to 1 to see the traceback of every error, the user-fixable ones too (debugging).
TRACEBACK_ENV = "ATLANTIS_TRACEBACK"
#: Characters of an offending value shown in a validation message.
_SHOW_VALUE = 80


def friendly_errors(fn: F) -> F:
    """Show user-fixable errors as one red message and exit 2 (no traceback).

    What counts as user-fixable is ``user_message``; everything else is a bug and keeps its
    traceback. ``ATLANTIS_TRACEBACK=1`` shows the traceback of every error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            message = user_message(e)
            if message is None or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            fail(message)

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print ``error: message`` in red on stderr and exit 2 (the CLI's clear-error exit)."""
    # soft_wrap: long paths in messages must stay on one line (greppable, copyable).
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def user_message(exc: BaseException) -> str | None:
    """The message of an error caused by the user's input, or None when it is a bug.

    User-fixable: the project's own errors (``AtlantisError``, unknown registry names);
    a pydantic ``ValidationError`` of one of the project's models (a config or record the
    user wrote); and a ``ValueError`` / ``TypeError`` that atlantis code raised on purpose
    (a ``raise`` statement in the ``atlantis`` package: how its validators report a bad
    argument). A ``ValueError`` that numpy, torch or a builtin raised inside atlantis code
    is not on that list: it usually means a bug, whose traceback must stay.
    """
    if isinstance(exc, AtlantisError | UnknownNameError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return validation_message(exc) if exc.title in _atlantis_models() else None
    if isinstance(exc, ValueError | TypeError) and raised_by_atlantis(exc):
        return str(exc)
    return None


def raised_by_atlantis(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a ``raise`` statement in the atlantis package."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    module = str(frame.f_globals.get("__name__", ""))
    if module != "atlantis" and not module.startswith("atlantis."):
        return False
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno, frame.f_globals)
    return line.lstrip().startswith("raise")


@functools.cache
def _atlantis_models() -> frozenset[str]:
    """Names of the pydantic models defined in the atlantis package (configs, records...)."""
    names: set[str] = set()
    todo: list[type] = [BaseModel]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] == "atlantis":
                names.add(sub.__name__)
    return frozenset(names)


def validation_message(exc: ValidationError) -> str:
    """One line per problem: the field's dotted path, what is wrong, and the value given."""
    problems = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(the whole object)"
        got = repr(e.get("input"))
        got = got if len(got) <= _SHOW_VALUE else got[: _SHOW_VALUE - 3] + "..."
        problems.append(f"{loc}: {e['msg']} (got {got})")
    return f"invalid {exc.title}: " + "; ".join(problems)


@contextmanager
def inputs_named(**files: Path) -> Iterator[None]:
    """Name the file behind a validation error of a library call that only saw its array.

    The retrieval functions say ``"embeddings: ..."`` or ``"labels: ..."``; inside this
    block such a message is re-raised as an ``InputError`` prefixed with the file of that
    name (``inputs_named(embeddings=path, labels=path2)``), and any other user-fixable
    ``ValueError`` with the first file (the array the computation is about).
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        if isinstance(e, AtlantisError) or user_message(e) is None or not files:
            raise
        message = str(e)
        named = [path for name, path in files.items() if message.lower().startswith(f"{name}:")]
        source = named[0] if named else next(iter(files.values()))
        raise InputError(message, source) from e


def run_config(
    run: Run,
    config_file: Path | None,
    overrides: list[str] | None,
    switch: tuple[str, str, str, str | None] | None = None,
) -> AtlantisConfig:
    """The run's saved config, then ``--config`` file, then ``--set`` overrides.

    ``switch = (section, name_key, options_key, new_name)``: options belong to a backend, so
    when a command switches ``section.name_key`` to another backend, the saved
    ``section.options_key`` of the previous one are dropped (``top_k`` of one captioner
    would make another fail).
    """
    base: dict[str, Any] = {}
    if run.config_path.exists():
        base = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    if switch is not None:
        section, name_key, options_key, new_name = switch
        saved = base.get(section)
        if new_name and isinstance(saved, dict) and saved.get(name_key) != new_name:
            saved.pop(options_key, None)
    return load_config(config_file, overrides or [], base=base)


def save_run_config(run: Run, cfg: AtlantisConfig) -> None:
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run.config_path)


def parse_numbers(text: str, kind: type, option: str, example: str) -> list[Any]:
    """``"1, 10"`` -> ``[1, 10]``; a bad list is a ``ConfigError`` naming ``option``.

    A ``ConfigError``, not click's ``BadParameter``: every bad input prints the same one
    ``error:`` line, whichever layer catches it.
    """
    try:
        values = [kind(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated {kind.__name__}s, "
                          f"e.g. {example}") from None  # fmt: skip
    if not values:
        raise ConfigError(f"{option} {text!r}: give at least one value, e.g. {example}")
    return values


def parse_ks(text: str | None, option: str = "--k") -> list[int] | None:
    """The K values of ``--k 1,2,4,8`` (None: not given)."""
    if text is None:
        return None
    ks = parse_numbers(text, int, option, "1,2,4,8")
    if any(k < 1 for k in ks):
        raise ConfigError(f"{option} {text!r}: K values must be positive integers, e.g. 1,2,4,8")
    return ks


def is_tty() -> bool:
    return sys.stderr.isatty()


def print_recall_table(rows: dict[str, dict], title: str) -> None:
    """One row per model, one column per R@K (and MAP@R), as percentages."""
    first = next(iter(rows.values()))
    keys = [key for key in first if key.startswith("R@")] + ["MAP@R"]
    table = Table(title=title)
    table.add_column("model")
    for key in keys:
        table.add_column(key, justify="right")
    for name, res in rows.items():
        table.add_row(name, *(f"{100 * res[key]:.1f}" for key in keys))
    console.print(table)
