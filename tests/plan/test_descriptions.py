"""Target-image descriptions: the rules handler, the checks on every text, the top-up loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atlantis.insight.schema import Domain
from atlantis.llm import create_llm
from atlantis.llm.base import LLM, LLMOutputError
from atlantis.plan.descriptions import accept, describe_class, display_name
from atlantis.plan.naive import naive_description

DOMAINS = {d: Domain(name=d, description=f"birds {d}") for d in ("flying", "swimming")}
OBJECTIVE = {"objective": "Fill the gaps.", "guidelines": ["One sentence."]}


def describe(llm: LLM, requests: dict, existing: dict | None = None, **kw: Any) -> dict:
    args: dict[str, Any] = {
        "class_name": "Laysan Albatross", "is_new_class": False, "reference": "A seabird.",
        "tokens": ["wing", "beak"], "requests": requests, "why": {}, "existing": existing or {},
        "objective": OBJECTIVE, "criterion": "activity", "domains": DOMAINS, "per_call": 4,
    }  # fmt: skip
    return describe_class(llm, **{**args, **kw})


def test_rules_texts_have_the_count_no_repeats_and_name_class_and_domain() -> None:
    rules = create_llm("rules")
    got = describe(rules, {"swimming": 7, "flying": 3, None: 2})
    assert {d: len(t) for d, t in got.items()} == {"swimming": 7, "flying": 3, None: 2}
    texts = [t for ts in got.values() for t in ts]
    assert len(set(texts)) == len(texts)
    for d in ("swimming", "flying"):
        assert all(t.startswith(f"a photo of a Laysan Albatross {d}, ") for t in got[d])
    assert got[None][0].startswith("a photo of a Laysan Albatross, ")
    assert "featuring wing" in got["swimming"][0] and "featuring beak" in got["swimming"][1]
    assert describe(rules, {"swimming": 7, "flying": 3, None: 2}) == got  # deterministic
    # A later round continues the enumeration: nothing repeats the earlier texts.
    more = describe(rules, {"swimming": 5}, existing=got)
    assert not set(more["swimming"]) & set(texts) and len(set(more["swimming"])) == 5


def test_rules_stay_distinct_beyond_the_enumeration() -> None:
    got = describe(create_llm("rules"), {"flying": 450}, per_call=500)["flying"]
    assert len(set(got)) == 450 and got[400].endswith("variant 2")


def test_domain_phrase_follows_the_criterion() -> None:
    rules = create_llm("rules")
    scene = describe(rules, {"harbour": 1}, criterion="scene", domains={})["harbour"][0]
    assert scene.startswith("a photo of a Laysan Albatross in a harbour scene, ")
    labels = describe(rules, {"google": 1}, criterion="provided domain labels", domains={})
    assert "Laysan Albatross in the google domain" in labels["google"][0]


def test_accept_cleans_and_rejects() -> None:
    seen: set[str] = set()
    texts = ["0: A Laysan Albatross gliding.", "a laysan albatross gliding",  # a repeat
             "- Two Laysan Albatrosses nesting.", '"A gull on a post."',  # no class name
             "", "A Laysan Albatross " + "x" * 500]  # fmt: skip
    assert accept(texts, "Laysan Albatross", seen) == [
        "A Laysan Albatross gliding.", "Two Laysan Albatrosses nesting."]  # fmt: skip
    assert accept(["A smiling face emoji"], "face-smiling", set()) == ["A smiling face emoji"]
    assert display_name("001.Black_footed_Albatross") == "Black footed Albatross"
    assert naive_description("face-smiling") == "a photo of a face smiling"
    assert naive_description("Arctic Tern") == "a photo of an Arctic Tern"


class Writer(LLM):
    """A scripted description writer: each call answers with the next script entry."""

    def __init__(self, script: list) -> None:
        super().__init__(max_repairs=0)
        self.script, self.seen = script, []

    @property
    def identity(self) -> str:
        return "fake:writer"

    def generate(self, messages, schema, options) -> str:
        data = json.loads(messages[1]["content"].split("<data>")[1].split("</data>")[0])
        self.seen.append(data)
        return json.dumps(self.script.pop(0) if self.script else {"cells": []})


def test_a_short_answer_is_topped_up_with_the_accepted_texts_to_avoid() -> None:
    first = {
        "cells": [
            {
                "domain": "Flying",
                "descriptions": [
                    "A Laysan Albatross soaring.",
                    "A Laysan Albatross soaring!",
                    "A gull soaring.",
                ],
            }
        ]
    }
    second = {
        "cells": [
            {
                "domain": "flying",
                "descriptions": [
                    "A Laysan Albatross banking at dusk.",
                    "A Laysan Albatross over waves.",
                ],
            }
        ]
    }
    writer = Writer([first, second])
    got = describe(writer, {"flying": 3})
    assert got == {"flying": ["A Laysan Albatross soaring.", "A Laysan Albatross banking at dusk.",
                              "A Laysan Albatross over waves."]}  # fmt: skip
    ask = writer.seen[1]["cells"][0]
    assert ask["n"] == 2 and ask["start"] == 1 and ask["avoid"] == ["A Laysan Albatross soaring."]


def test_a_writer_that_adds_nothing_fails_naming_the_class() -> None:
    writer = Writer([{"cells": [{"domain": "flying", "descriptions": ["A gull."]}]}] * 5)
    with pytest.raises(LLMOutputError, match="'Laysan Albatross'"):
        describe(writer, {"flying": 2})
    assert len(writer.seen) == 3 and writer.seen[1]["retry"] == 1  # asked anew, not cached


def test_every_aps_task_has_a_template_and_a_rules_handler() -> None:
    from atlantis.llm.prompts import load_prompt
    from atlantis.llm.rules import RULES
    from atlantis.plan import descriptions as desc
    from atlantis.plan import objective, reference

    for mod in (objective, reference, desc):
        assert mod.TASK in RULES and "aps." + mod.TEMPLATE.split("/")[1] == mod.TASK
        system, user = load_prompt(mod.TEMPLATE).render({"x": 1}, {"title": "T"})
        assert "<data>" in user["content"] and "JSON" in system["content"]
