"""``LLM.run``'s shared machinery, with a scripted in-process backend (no HTTP, no model):
JSON extraction, validation, repair turns, the call store as cache and audit trail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlantis.llm.base import LLM, LLMOutputError, extract_json
from atlantis.llm.store import CallStore

from .conftest import TASK_NAME, Label, label_task

GOOD = '{"label": "car", "confidence": 0.5}'


class ScriptedLLM(LLM):
    """Answers with the next scripted text and records every conversation it was sent."""

    def __init__(self, *answers: str, name: str = "scripted", max_repairs: int = 2) -> None:
        super().__init__(max_repairs=max_repairs)
        self.answers = list(answers)
        self.calls: list[list[dict[str, str]]] = []
        self.name = name

    @property
    def identity(self) -> str:
        return self.name

    def generate(self, messages, schema, options) -> str:
        self.calls.append(list(messages))
        return self.answers.pop(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2]\n", [1, 2]),
        ('Here you go: {"a": {"b": [1]}} -- hope that helps', {"a": {"b": [1]}}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Answer:\n```\n{"a": "x```y"}\n```', {"a": "x```y"}),
        ('list first: [1] then {"a": 2}', {"a": 2}),
    ],
)
def test_extract_json(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", '{"a": 1', "{'a': 1}"])
def test_extract_json_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="no JSON object found"):
        extract_json(text)


def test_valid_first_answer_needs_one_call() -> None:
    llm = ScriptedLLM(GOOD)
    assert llm.run(label_task()) == Label(label="car", confidence=0.5)
    (messages,) = llm.calls
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"label"' in messages[0]["content"]  # the schema is rendered into the prompt


def test_repair_turn_quotes_the_error_and_keeps_the_conversation() -> None:
    llm = ScriptedLLM('{"label": "car"}', GOOD)
    assert llm.run(label_task()).confidence == 0.5
    first, second = llm.calls
    assert second[:2] == first
    assert second[2] == {"role": "assistant", "content": '{"label": "car"}'}
    assert second[3]["role"] == "user"
    assert "confidence" in second[3]["content"] and "Field required" in second[3]["content"]


def test_output_error_after_max_repairs(tmp_path: Path) -> None:
    llm = ScriptedLLM("nope", "still nope", max_repairs=1)
    store = CallStore(tmp_path)
    with pytest.raises(LLMOutputError) as info:
        llm.run(label_task(), store)
    msg = str(info.value)
    assert msg.startswith(f"{TASK_NAME}:") and "2 attempt(s)" in msg and "scripted" in msg
    assert len(llm.calls) == 2
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert [a["raw"] for a in record["attempts"]] == ["nope", "still nope"]
    assert record["ok"] is False and record["parsed"] is None


def test_no_repairs_means_one_attempt() -> None:
    llm = ScriptedLLM("nope", max_repairs=0)
    with pytest.raises(LLMOutputError, match="1 attempt"):
        llm.run(label_task())


def test_store_records_and_replays(tmp_path: Path) -> None:
    store = CallStore(tmp_path)
    first = ScriptedLLM("garbage", GOOD)
    assert first.run(label_task(), store).label == "car"
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["ok"] is True and record["task"] == TASK_NAME
    assert record["prompt"] == "tests/label.v1"
    assert [a["error"] is None for a in record["attempts"]] == [False, True]
    assert record["messages"][1]["content"].count("a red sports car") == 1
    replay = ScriptedLLM()  # would fail if asked
    assert replay.run(label_task(), store) == first.run(label_task(), store)
    assert replay.calls == []


def test_failed_record_is_asked_again(tmp_path: Path) -> None:
    store = CallStore(tmp_path)
    with pytest.raises(LLMOutputError):
        ScriptedLLM("x", max_repairs=0).run(label_task(), store)
    again = ScriptedLLM(GOOD)
    assert again.run(label_task(), store).label == "car" and len(again.calls) == 1
    assert len(store) == 1  # the good answer replaced the failure


def test_damaged_record_is_asked_again(tmp_path: Path) -> None:
    store = CallStore(tmp_path)
    ScriptedLLM(GOOD).run(label_task(), store)
    (path,) = tmp_path.glob("*.json")
    path.write_text("{ truncated")
    again = ScriptedLLM(GOOD)
    again.run(label_task(), store)
    assert len(again.calls) == 1


@pytest.mark.parametrize(
    "change",
    [
        {
            "template_version": 2,
            "variables": {"caption": "a red sports car on a road", "domain": "cars"},
        },
        {"variables": {"caption": "another caption"}},
        {"options": {"temperature": 0.7}},
    ],
    ids=["prompt-version", "inputs", "options"],
)
def test_cache_key_changes_with_what_shapes_the_answer(tmp_path: Path, change: dict) -> None:
    store = CallStore(tmp_path)
    ScriptedLLM(GOOD).run(label_task(), store)
    again = ScriptedLLM(GOOD)
    again.run(label_task(**change), store)
    assert len(again.calls) == 1 and len(store) == 2


def test_cache_key_changes_with_the_backend_identity(tmp_path: Path) -> None:
    store = CallStore(tmp_path)
    ScriptedLLM(GOOD, name="model-a").run(label_task(), store)
    other = ScriptedLLM(GOOD, name="model-b")
    other.run(label_task(), store)
    assert len(other.calls) == 1


def test_store_is_created_lazily(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "not" / "yet")
    assert len(store) == 0 and store.get("abc") is None
    ScriptedLLM(GOOD).run(label_task(), store)
    assert len(store) == 1
