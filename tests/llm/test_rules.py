"""The ``rules`` engine: registered deterministic handlers answer tasks; it is not a model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from atlantis.llm import create_llm
from atlantis.llm.rules import RULES, RulesEngine, rule
from atlantis.llm.store import CallStore
from atlantis.registry import UnknownNameError

from .conftest import Label, label_task

RULE_NAME = "tests.rules_label"
MODEL_RULE_NAME = "tests.rules_label_model"


def _label_from_caption(variables: dict[str, Any]) -> dict[str, Any]:
    words = variables["caption"].split()
    return {"label": words[-1], "confidence": 1.0}


def _label_model(variables: dict[str, Any]) -> Label:
    return Label(label=variables["caption"].upper(), confidence=0.25)


@pytest.fixture(autouse=True, scope="module")
def registered_test_rules() -> Iterator[None]:
    """Register the test handlers for this module only: RULES is process-wide."""
    rule(RULE_NAME)(_label_from_caption)
    rule(MODEL_RULE_NAME)(_label_model)
    yield
    for name in (RULE_NAME, MODEL_RULE_NAME):  # Registry has no public unregister
        RULES._entries.pop(name)
        RULES._help.pop(name)


def test_registered_handler_answers(tmp_path: Path) -> None:
    engine = create_llm("rules")
    assert isinstance(engine, RulesEngine)
    store = CallStore(tmp_path)
    out = engine.run(label_task(name=RULE_NAME, caption="a red car"), store)
    assert out == Label(label="car", confidence=1.0)
    assert len(store) == 0  # nothing to audit: no model was asked


def test_handler_may_return_the_model_itself() -> None:
    out = RulesEngine().run(label_task(name=MODEL_RULE_NAME, caption="bike"))
    assert out == Label(label="BIKE", confidence=0.25)


def test_unregistered_task_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        RulesEngine().run(label_task(name="tests.no_such_rule"))
    msg = str(info.value)
    assert "tests.no_such_rule" in msg and RULE_NAME in msg and "valid names" in msg


class _Strict(Label):
    extra_field: int


def test_handler_output_is_still_validated() -> None:
    with pytest.raises(ValidationError, match="extra_field"):
        RulesEngine().run(label_task(name=MODEL_RULE_NAME, schema=_Strict))


def test_rules_is_not_a_language_model() -> None:
    engine = create_llm("rules", anything="ignored")
    assert engine.is_language_model is False
    assert engine.identity == "rules"
    with pytest.raises(NotImplementedError):
        engine.generate([], {}, {})
