"""``friendly_errors``: which errors become the one-line clear error, and which stay bugs."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from atlantis.cli.common import friendly_errors, inputs_named, user_message
from atlantis.errors import ConfigError, InputError
from atlantis.train.config import TrainConfig


def _cli(body) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @friendly_errors
    def cmd() -> None:
        body()

    return app


def _raise(exc: BaseException):
    def body() -> None:
        raise exc

    return body


def test_validation_errors_of_atlantis_code_are_one_line() -> None:
    from atlantis.data.splits import assign_splits

    with pytest.raises(ValueError) as info:  # a ``raise ValueError`` in atlantis code
        assign_splits([], "zsl", val_fraction=0.9)
    assert "val_fraction" in (user_message(info.value) or "")
    with pytest.raises(ValidationError) as bad:
        TrainConfig(lr=-1)
    assert user_message(bad.value).startswith("invalid TrainConfig: lr: ")
    res = CliRunner().invoke(_cli(_raise(InputError("3 rows", "e.npy"))), [])
    assert res.exit_code == 2 and res.output.startswith("error: e.npy: 3 rows")
    assert isinstance(InputError("x"), ValueError)  # library callers catching ValueError


def test_errors_raised_inside_libraries_keep_their_traceback() -> None:
    """A ValueError that numpy (or a builtin) raises is a bug until shown otherwise."""

    def numpy_bug() -> None:
        np.zeros(2).reshape(3)

    with pytest.raises(ValueError) as info:
        numpy_bug()
    assert user_message(info.value) is None
    with pytest.raises(ValueError, match="reshape"):
        CliRunner().invoke(_cli(numpy_bug), [], catch_exceptions=False)
    with pytest.raises(ValueError, match="not from atlantis"):  # this test module's own raise
        CliRunner().invoke(_cli(_raise(ValueError("not from atlantis"))), [],
                           catch_exceptions=False)  # fmt: skip

    class Foreign(BaseModel):
        x: int

    with pytest.raises(ValidationError) as bad:
        Foreign(x="no")
    assert user_message(bad.value) is None  # not one of the project's models


def test_atlantis_traceback_shows_every_traceback(monkeypatch) -> None:
    monkeypatch.setenv("ATLANTIS_TRACEBACK", "1")
    with pytest.raises(ConfigError, match="bad key"):
        CliRunner().invoke(_cli(_raise(ConfigError("bad key"))), [], catch_exceptions=False)


def test_inputs_named_puts_the_file_on_the_arrays_message(tmp_path) -> None:
    from atlantis.evaluation.distances import get_distance

    files = {"embeddings": tmp_path / "e.npy", "labels": tmp_path / "lab.npy"}
    with pytest.raises(InputError, match=r"lab.npy: labels: 3 for 4$"), inputs_named(**files):
        _atlantis_value_error("labels: 3 for 4")
    with pytest.raises(InputError, match=r"e.npy: Unknown distance"), inputs_named(**files):
        get_distance("nope")  # about neither by name: the embeddings, what is computed on
    with pytest.raises(ZeroDivisionError), inputs_named(**files):
        _ = 1 / 0  # not a validation error: untouched


def _atlantis_value_error(message: str) -> None:
    """Raise ``message`` from a ``raise`` statement in an atlantis module (as validators do)."""
    namespace = {"__name__": "atlantis.fake_validator"}
    import linecache

    source = f"def f():\n    raise ValueError({message!r})\n"
    filename = "<atlantis-fake-validator>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    namespace["f"]()
