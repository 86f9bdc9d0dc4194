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
    # the class's caption tokens, in a rotating window
    assert (
        "with wing and beak, " in got["swimming"][0]
        and "with beak and wing, " in got["swimming"][1]
    )
    assert not any("domain" in t for t in texts)
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
    assert scene.startswith("a photo of a Laysan Albatross in the harbour, ")
    style = describe(rules, {"watercolor": 1}, criterion="art style", domains={})["watercolor"][0]
    assert style.startswith("a photo of a Laysan Albatross in watercolor style, ")
    # A provided label is named as the data names it: no template word such as "domain".
    labels = describe(rules, {"google": 1}, criterion="provided domain labels", domains={})
    assert labels["google"][0].startswith("a photo of a Laysan Albatross, google, with wing")
    assert "domain" not in labels["google"][0]


def test_rules_texts_carry_the_datas_words() -> None:
    """The word every caption uses, the class's tokens and the domain's caption tokens."""
    rules = create_llm("rules")
    got = describe(rules, {"swimming": 4}, tokens=["wing", "beak", "webbed foot", "dive"],
                   subject="bird", domain_words={"swimming": ["water", "wave"]},
                   criterion="activity")  # fmt: skip
    first = got["swimming"][0]
    assert first.startswith("a Laysan Albatross bird swimming, water, wave, with wing, beak and "
                            "webbed foot, ")  # fmt: skip
    assert "with beak, webbed foot and dive, " in got["swimming"][1]
    assert all(
        t.startswith("a Laysan Albatross bird swimming, water, wave, ") for t in got["swimming"]
    )
    # A subject word already in the class's name is not said twice.
    emoji = describe(rules, {None: 1}, class_name="face-smiling", tokens=["grin"], subject="face")
    assert emoji[None][0].startswith("a photo of a face smiling, with grin, ")
    # A writer model is given the same words, per cell, and asked to use them.
    writer = Writer([{"cells": [{"domain": "swimming", "descriptions": ["A Laysan Albatross."]}]}])
    describe(writer, {"swimming": 1}, subject="bird", domain_words={"swimming": ["water"]})
    seen = writer.seen[0]
    assert seen["subject_word"] == "bird" and seen["class_tokens"] == ["wing", "beak"]
    assert seen["cells"][0]["domain_words"] == ["water"]
    from atlantis.llm.prompts import load_prompt

    system = load_prompt("aps/descriptions").system
    assert all(f'"{k}"' in system for k in ("class_tokens", "subject_word", "domain_words"))


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


def test_the_plans_texts_carry_the_insights_words(bare_run) -> None:
    """From insight.json to plan.jsonl: class tokens, the subject word, the domain's words."""
    from atlantis.plan.config import PlanConfig
    from atlantis.plan.stage import load_plan, plan

    from .conftest import TRAIN, make_insight, write_insight

    def toks(*words: str) -> list[dict]:
        return [{"token": w, "pos": "noun", "count": 5} for w in words]

    own = {"Laysan Albatross": ("wingspan", "ocean"), "Herring Gull": ("harbour", "chip"),
           "Arctic Tern": ("fork", "migration"), "Mallard": ("drake", "pond")}  # fmt: skip
    write_insight(bare_run, make_insight(
        top_tokens=toks("bird", "water"),
        top_tokens_per_class={c: toks("bird", *own[c]) for c in TRAIN},
        domain_tokens={"swimming": toks("water", "wave"), "flying": toks("sky")}))  # fmt: skip
    plan(bare_run, PlanConfig(budget=60))
    items = [it for it in load_plan(bare_run, "targeted") if not it.is_new_class]
    assert items
    for it in items:
        text = it.description
        assert text.startswith(f"{'an' if it.class_name[0] in 'AEIOU' else 'a'} "
                               f"{it.class_name} bird {it.domain}")  # fmt: skip
        assert all(w in text for w in own[it.class_name])  # its distinctive tokens
        assert ("water, wave" in text) == (it.domain == "swimming")
        assert ("sky" in text) == (it.domain == "flying")
