"""The insight HTML report: well-formed, self-contained, escaped, complete, and renderable."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from atlantis.insight.report import backend_label, render_insight_report
from atlantis.insight.schema import Domain, Insight, ScarceCell, TokenCount
from tests.chromium import assert_renders, needs_chromium

EVIL = "<script>alert(1)</script>"
CLASSES = ["animal-mammal", "food-fruit", "transport-air", EVIL, 'quote"&amp']
COUNTS = {
    "animal-mammal": {"google": 30, "twitter": 28},
    "food-fruit": {"google": 20, "twitter": 3},
    "transport-air": {"google": 12, "twitter": 11},
    EVIL: {"google": 2, "twitter": 4},
    'quote"&amp': {"google": 0, "twitter": 9},
}
SCARCE = [("food-fruit", "twitter", 3, 11.5), ('quote"&amp', "google", 0, 4.5)]


def make_insight(**metadata: object) -> Insight:
    return Insight(
        data_overview="Emoji by two vendors. <img src=x onerror=alert(2)>",
        class_imbalance_recommendations=f"Generate more {EVIL} images.",
        domain_imbalance_recommendations={"food-fruit": "Add twitter-style fruit."},
        class_names=CLASSES,
        class_counts={c: sum(row.values()) for c, row in COUNTS.items()},
        imbalance_ratio=58 / 6,
        under_represented_classes=[EVIL],
        domain_criterion="art style",
        domains=[
            Domain(name="google", description="Noto: gradients", keywords=["soft", "round"]),
            Domain(name="twitter", description="Twemoji: flat", keywords=["flat"]),
        ],
        class_domain_counts=COUNTS,
        scarce_cells=[
            ScarceCell(class_name=c, domain=d, count=n, expected=e) for c, d, n, e in SCARCE
        ],
        new_classes=["animal-reptile"],
        top_tokens=[
            TokenCount(token="face", pos="noun", count=40),
            TokenCount(token="hold", pos="verb", count=7),
        ],
        top_tokens_per_class={"food-fruit": [TokenCount(token="apple", pos="noun", count=5)]},
        metadata={"dataset": "emoji", "llm": "rules", "is_language_model": False} | metadata,
    )


DETECTOR_VIEWS = [
    {
        "name": "class_imbalance",
        "status": "ok",
        "n_items": 5,
        "n_flagged": 1,
        "summary": {"median_count": 23.0, "flagged": [{"class": EVIL, "count": 6}]},
        "top_items": [{"key": EVIL, "score": 0.26, "flagged": True, "detail": {"count": 6}}],
    },
    {"name": "outliers", "status": "skipped", "summary": {"reason": "no embeddings"}},
    {"name": "near_duplicates", "status": "failed", "error": "RuntimeError: <b>bad</b>"},
]


class Collector(HTMLParser):
    """Records start tags and all text, and fails on tags a report must never contain."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag not in ("script", "img", "link", "iframe"), f"unexpected <{tag}>"
        assert not any(name.startswith("on") for name, _ in attrs), "event handler attribute"
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def report(tmp_path: Path) -> tuple[str, Collector]:
    out = render_insight_report(make_insight(), DETECTOR_VIEWS, tmp_path / "deep" / "r.html")
    page = out.read_text(encoding="utf-8")
    parser = Collector()
    parser.feed(page)
    parser.close()
    return page, parser


def test_parses_and_has_both_charts(report: tuple[str, Collector]) -> None:
    page, parser = report
    assert page.startswith("<!DOCTYPE html>") and parser.tags.count("svg") == 2
    # One bar per class, one cell per class x domain, plus their tooltips.
    assert parser.tags.count("rect") == len(CLASSES) + len(CLASSES) * 2
    assert parser.tags.count("title") >= 3 * len(CLASSES)


def test_untrusted_text_is_escaped(report: tuple[str, Collector]) -> None:
    page, parser = report
    assert EVIL not in page and "<img src=x" not in page and "<b>bad</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = "".join(parser.text)
    assert EVIL in text and "<b>bad</b>" in text  # shown as text, not markup


def test_every_class_and_the_backend_label_appear(report: tuple[str, Collector]) -> None:
    text = "".join(report[1].text)
    for name in CLASSES:
        assert name in text
    assert "rules (no LLM)" in text
    for piece in ("google", "Twemoji: flat", "face", "hold", "animal-reptile", "apple"):
        assert piece in text
    for piece in ("class_imbalance", "skipped", "no embeddings", "failed"):
        assert piece in text


def test_scarce_cells_are_outlined_and_underrepresented_bars_highlighted(
    report: tuple[str, Collector],
) -> None:
    page = report[0]
    assert len(re.findall(r'stroke="#d62728" stroke-width="2"', page)) == len(SCARCE)
    assert len(re.findall(r'<rect [^>]*fill="#e45756"', page)) == 1  # EVIL's bar only


def test_backend_label() -> None:
    assert backend_label({"llm": "rules", "is_language_model": False}) == "rules (no LLM)"
    assert (
        backend_label({"llm": "openai:gpt-4o", "is_language_model": True}) == "LLM: openai:gpt-4o"
    )
    assert backend_label({"llm": {"identity": "hf:qwen"}}) == "LLM: hf:qwen"
    assert backend_label({}) == "unknown backend"


def test_findings_default_to_the_insight_and_many_classes_scroll(tmp_path: Path) -> None:
    names = [f"class-{i:03d}" for i in range(200)]
    counts = {n: {"google": i % 13, "twitter": 3} for i, n in enumerate(names)}
    insight = make_insight(llm="openai:gpt-4o", is_language_model=True).model_copy(
        update={
            "class_names": names,
            "class_counts": {n: sum(r.values()) for n, r in counts.items()},
            "class_domain_counts": counts,
            "scarce_cells": [],
            "findings": [{"name": "from_insight", "status": "ok", "summary": {"n": 1}}],
        }
    )
    page = render_insight_report(insight, None, tmp_path / "big.html").read_text()
    assert page.count('class="scroll"') >= 2 and "from_insight" in page
    assert "LLM: openai:gpt-4o" in page and "rules (no LLM)" not in page
    assert all(n in page for n in names)


@needs_chromium
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    assert_renders(
        render_insight_report(make_insight(), DETECTOR_VIEWS, tmp_path / "r.html"), tmp_path
    )
