"""Descriptions written concurrently (``plan.llm_concurrency``) are the sequential plan: same
texts, same references, same call store records; a re-run is answered from the store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from atlantis.llm.base import LLM, LLMOutputError
from atlantis.llm.concurrency import ordered_map
from atlantis.llm.rules import RULES
from atlantis.llm.store import CallStore
from atlantis.plan.budget import allocate
from atlantis.plan.config import PlanConfig
from atlantis.plan.items import describe_rows
from atlantis.plan.objective import AugmentationObjective

from .conftest import make_insight

TASKS = {
    "DescriptionBatch": "aps.descriptions",
    "ReferenceDescriptions": "aps.reference_description",
}


class SlowWriter(LLM):
    """A model behind a slow server: answers like the rules engine after ``delay`` seconds,
    as JSON text through ``LLM.run`` (so the store records every exchange), and counts how
    many calls were in flight at once."""

    def __init__(self, delay: float = 0.02) -> None:
        super().__init__(max_repairs=0)
        self.delay, self.calls, self.in_flight, self.most = delay, 0, 0, 0
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return "fake:slow-writer"

    def generate(self, messages, schema, options) -> str:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.delay)
            data = json.loads(messages[1]["content"].split("<data>")[1].split("</data>")[0])
            return RULES.get(TASKS[schema["title"]])(data).model_dump_json()
        finally:
            with self._lock:
                self.in_flight -= 1


def plan_texts(llm: LLM, store: Path, concurrency: int, per_call: int = 3):
    ins = make_insight()
    alloc = allocate(ins, 90)
    cfg = PlanConfig(budget=90, llm_concurrency=concurrency, descriptions_per_call=per_call)
    objective = AugmentationObjective(objective="Fill the gaps.", guidelines=["One sentence."])
    return describe_rows(llm, ins, objective, alloc.rows, [], cfg, CallStore(store))


def records(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.json"))}


def test_concurrent_plan_is_the_sequential_plan(tmp_path: Path) -> None:
    one, many = SlowWriter(), SlowWriter()
    seq = plan_texts(one, tmp_path / "seq", concurrency=1)
    par = plan_texts(many, tmp_path / "par", concurrency=4)
    assert one.most == 1 and many.most > 1  # really sent at once
    assert list(par[0].items()) == list(seq[0].items())  # same texts, same order
    assert par[1] == seq[1]  # same references
    assert one.calls == many.calls and records(tmp_path / "par") == records(tmp_path / "seq")
    assert len(records(tmp_path / "seq")) == one.calls
    # Resumable: a re-run is answered from the store, concurrently too.
    again = SlowWriter()
    assert plan_texts(again, tmp_path / "par", concurrency=4) == par and again.calls == 0


def test_concurrency_is_a_runtime_setting() -> None:
    from atlantis.plan.stage import _exclude
    from atlantis.store.run import config_hash

    a, b = PlanConfig(budget=10), PlanConfig(budget=10, llm_concurrency=1)
    assert config_hash(a, _exclude(a)) == config_hash(b, _exclude(b))
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        PlanConfig(llm_concurrency=0)


def test_ordered_map_keeps_order_and_raises_the_first_failure_in_order() -> None:
    def fn(x: int) -> int:
        time.sleep(0.02 * (5 - x))  # later items finish first
        if x in (1, 3):
            raise LLMOutputError(f"item {x}")
        return x * 10

    assert ordered_map(lambda x: x * 10, [3, 1, 2], workers=3) == [30, 10, 20]
    with pytest.raises(LLMOutputError, match="item 1"):
        ordered_map(fn, list(range(5)), workers=5)
    with pytest.raises(LLMOutputError, match="item 1"):
        ordered_map(fn, list(range(5)), workers=1)
