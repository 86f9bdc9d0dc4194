"""The run report: complete, escaped, self-contained, honest about gaps, and renderable."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from atlantis.errors import DataError
from atlantis.report.html import render_report
from atlantis.report.schema import (
    ArmResult,
    ReportData,
    SeedResult,
    affected_class_r1,
    headroom,
    load_report_json,
    metric_order,
    save_report_json,
)
from tests.chromium import assert_renders, needs_chromium
from tests.report.conftest import CLASSES, EVIL, QUOTE, build_full_report


class Page(HTMLParser):
    """Start tags, their attributes, the text, and the text of each <section> by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag not in ("script", "link", "iframe", "object", "embed"), f"unexpected <{tag}>"
        assert not any(name.startswith("on") for name, _ in attrs), "event handler attribute"
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag == "section":
            self._section = dict(attrs)["id"]
            self.sections[self._section] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._section:
            self.sections[self._section].append(data)

    def section(self, anchor: str) -> str:
        return "".join(self.sections[anchor])


def render(data: ReportData, path: Path) -> tuple[str, Page]:
    page = render_report(data, path).read_text(encoding="utf-8")
    parser = Page()
    parser.feed(page)
    parser.close()
    return page, parser


@pytest.fixture
def full(full_report: ReportData, tmp_path: Path) -> tuple[str, Page]:
    return render(full_report, tmp_path / "out" / "report.html")


SECTIONS = [
    "insight",
    "data",
    "retrieval",
    "headroom",
    "curve",
    "fidelity",
    "deltas",
    "filter",
    "adversarial",
    "cost",
    "timings",
]


def test_every_section_and_its_numbers_appear(full: tuple[str, Page]) -> None:
    page, parser = full
    assert page.startswith("<!DOCTYPE html>") and list(parser.sections) == SECTIONS
    text = "".join(parser.text)
    assert "insight produced by the rules engine, not a language model" in text  # caveats
    assert "rules (no LLM)" in parser.section("insight") and "animal-reptile" in text
    retrieval = parser.section("retrieval")
    # targeted R@1 = mean(68.4, 68.0, 68.6) = 68.33 +- 0.31; +4.27 points over baseline's 64.07
    assert "68.3 \u00b1 0.3" in retrieval and "64.1 \u00b1 0.3" in retrieval and "+4.3" in retrieval
    assert "n=3" in retrieval and "MAP@R" in retrieval and "40 / 39 / 40" in retrieval
    assert "test (synthetic X_s)" in retrieval and "57.0" in retrieval  # X_s table
    assert re.search(r"<b>68\.3 \u00b1 0\.3", page)  # best R@1 in bold
    assert not re.search(r"<b>64\.1 \u00b1", page)
    deltas = parser.section("deltas")
    assert "+30.0" in deltas and "-5.0" in deltas  # EVIL's gain, animal-mammal's loss
    assert "targeted vs baseline" in deltas and "naive vs baseline" in deltas
    adversarial = parser.section("adversarial")
    assert "37.7" in adversarial and "10.9" in adversarial and "-30.7" in adversarial
    assert "outlier: 9" in parser.section("filter")
    cost = parser.section("cost")
    assert "83.1%" in cost and "paper, A100 SDXL fp32" in cost and "20:02:45" in cost
    assert "1:02:05" in parser.section("timings") and "train/targeted" in text


def test_untrusted_text_is_escaped(full: tuple[str, Page]) -> None:
    page, parser = full
    assert EVIL not in page and "<img src=x" not in page and QUOTE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = "".join(parser.text)
    assert EVIL in text and QUOTE in text  # shown as text, not markup


def test_self_contained_no_url_anywhere(full: tuple[str, Page]) -> None:
    page, parser = full
    assert not re.search(r"(?i)\b(https?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}/", page)
    links = [(tag, name, v) for tag, name, v in parser.attrs if name in ("src", "href")]
    assert links
    for tag, name, value in links:
        assert value and (
            value.startswith("data:image/png;base64,") if name == "src" else value.startswith("#")
        ), (tag, name, value)
    anchors = {v[1:] for _, name, v in links if name == "href" and v}
    assert anchors == set(SECTIONS)


def _images(parser: Page) -> list[Image.Image]:
    out = []
    for _, name, value in parser.attrs:
        if name == "src" and value:
            out.append(Image.open(io.BytesIO(base64.b64decode(value.split(",", 1)[1]))))
    return out


def test_review_images_lowest_kept_fraction_first_and_missing_skipped(
    full: tuple[str, Page],
) -> None:
    _, parser = full
    filt = parser.section("filter")
    # QUOTE (kept 10%) has only a missing grid: skipped; then EVIL 25%, food-fruit 50%, transport.
    assert filt.index(EVIL) < filt.index("food-fruit") < filt.index("transport-air")
    assert f"{QUOTE} (kept" not in filt
    sizes = [im.size for im in _images(parser)]
    # EVIL's grid and transport-air's as they are; food-fruit's kept PNG; its 400x300 JPEG
    # re-encoded as a 96 px thumbnail; its missing removed image skipped.
    assert sizes == [(40, 20), (40, 20), (96, 72), (40, 20)]


def test_max_grid_classes_bounds_the_images(full_report: ReportData, tmp_path: Path) -> None:
    page = render_report(full_report, tmp_path / "r.html", max_grid_classes=1).read_text()
    assert page.count("<img ") == 1


def test_charts_before_and_after(full: tuple[str, Page]) -> None:
    page, parser = full
    assert parser.tags.count("svg") == 1 + 3 + 2  # bars; real, targeted, naive heatmaps; deltas
    data = parser.section("data")
    assert "Same as the real data: baseline." in data
    assert "real + kept synthetic of targeted" in data and "real + kept synthetic of naive" in data
    assert data.index("of targeted") < data.index("of naive")  # targeted first
    # Targeted's heatmap marks the 4 cells that grew; naive's its 2; scarce cells outlined
    # in each of the three heatmaps.
    assert page.count("<polygon ") == 4 + 2
    assert len(re.findall(r'stroke="#d62728" stroke-width="2"', page)) == 2 * 3
    assert "2 real + 10 kept synthetic" in data  # EVIL x google in targeted's tooltip


def test_minimal_report_omits_sections_with_a_note(
    minimal_report: ReportData, tmp_path: Path
) -> None:
    page, parser = render(minimal_report, tmp_path / "min.html")
    assert list(parser.sections) == SECTIONS
    for anchor, note in [
        ("insight", "No insight in this run."),
        ("data", "No class counts in this run."),
        ("headroom", "No oracle arm and no affected classes"),
        ("deltas", "No per-class R@1"),
        ("filter", "No filter ran."),
        ("adversarial", "No adversarial evaluation"),
        ("cost", "No cost estimate"),
        ("timings", "No timings recorded."),
    ]:
        assert note in parser.section(anchor), anchor
    assert "50.0 \u00b1 0.0" in parser.section("retrieval")
    assert "No synthetic test set" in parser.section("retrieval")
    assert "<img" not in page and "<svg" not in page


def test_empty_report_renders(tmp_path: Path) -> None:
    _, parser = render(ReportData(), tmp_path / "empty.html")
    assert "No arm was trained." in parser.section("retrieval")


def test_summary_and_deltas_are_derived_and_stored(full_report: ReportData) -> None:
    targeted = full_report.arm("targeted")
    assert targeted is not None and list(targeted.summary) == ["R@1", "R@2", "MAP@R"]
    r1 = targeted.summary["R@1"]
    assert r1.n == 3 and r1.mean == pytest.approx(0.68333, abs=1e-4)
    assert r1.std == pytest.approx(0.003055, abs=1e-5)  # sample std
    assert full_report.per_class_delta["targeted"][EVIL] == pytest.approx(0.3)
    assert set(full_report.per_class_delta) == {"naive", "targeted"}
    one = ArmResult(name="x", seeds=[SeedResult(seed=0, recall={"R@1": 0.5})])
    assert one.summary["R@1"].std == 0.0


def test_metric_order() -> None:
    assert metric_order(["MAP@R", "R@10", "acc", "R@2", "R@1", "R@10"]) == [
        "R@1",
        "R@2",
        "R@10",
        "MAP@R",
        "acc",
    ]


def test_duplicate_arm_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ReportData(arms=[ArmResult(name="a"), ArmResult(name="a")])


def test_json_round_trip(full_report: ReportData, tmp_path: Path) -> None:
    path = save_report_json(full_report, tmp_path / "deep" / "report.json")
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1 and raw["arms"][2]["summary"]["R@1"]["n"] == 3
    assert raw["insight"]["scarce_cells"][0] == ["food-fruit", "twitter"]
    loaded = load_report_json(path)
    assert loaded == full_report
    # Rendering the loaded copy gives the same page.
    a = render_report(full_report, tmp_path / "a.html").read_text()
    assert render_report(loaded, tmp_path / "b.html").read_text() == a


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such report file"):
        load_report_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json.*not readable JSON"):
        load_report_json(bad)
    bad.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DataError, match="schema_version 99"):
        load_report_json(bad)
    bad.write_text(json.dumps({"schema_version": 1, "arms": [{"name": "a", "bogus": 1}]}))
    with pytest.raises(DataError, match="bogus"):
        load_report_json(bad)


def test_classes_of_the_fixture_all_appear(full: tuple[str, Page]) -> None:
    text = "".join(full[1].section("data"))
    assert all(c in text for c in CLASSES)


@needs_chromium
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    assert_renders(
        render_report(build_full_report(tmp_path / "run"), tmp_path / "r.html"), tmp_path
    )


def test_paired_differences_in_json_and_in_words(full_report: ReportData, tmp_path: Path) -> None:
    raw = json.loads(save_report_json(full_report, tmp_path / "report.json").read_text())
    r1 = {(p["a"], p["b"]): p for p in raw["paired"] if p["metric"] == "R@1"}
    assert list(r1) == [("targeted", "naive"), ("targeted", "baseline"), ("naive", "baseline")]
    tn = r1[("targeted", "naive")]
    assert tn["seeds"] == [0, 1, 2] and tn["mean"] == pytest.approx(0.033, abs=1e-9)
    assert tn["lo"] == pytest.approx(0.0216163, abs=1e-6) and tn["significant"] is True
    assert raw["per_class_paired"] == {}  # the fixture's seeds carry no per-class R@1
    _, parser = render(full_report, tmp_path / "r.html")
    text = " ".join(parser.section("retrieval").split())
    assert "Paired differences (same seeds)" in text
    assert ("targeted beats naive by 3.3 points R@1 (95 % interval 2.2 to 4.4 over 3 paired "
            "seeds): significant (the interval excludes 0).") in text  # fmt: skip
    assert "single-seed noise" in parser.section("deltas")
    assert "steps" not in text and "images seen" not in text  # no stage recorded them


def test_one_seed_says_so_and_steps_show_when_recorded(tmp_path: Path) -> None:
    def arm(name: str, r1: float, steps: list[int | None]) -> ArmResult:
        return ArmResult(name=name, seeds=[
            SeedResult(seed=i, recall={"R@1": r1 - 0.001 * i}, optimizer_steps=s,
                       images_seen=None if s is None else 32 * s, per_class_r1={"c": r1})
            for i, s in enumerate(steps)])  # fmt: skip

    one = ReportData(arms=[arm("baseline", 0.5, [100]), arm("targeted", 0.494, [120])])
    assert one.paired[0].lo is None and one.per_class_paired == {}
    _, parser = render(one, tmp_path / "one.html")
    text = " ".join(parser.section("retrieval").split())
    assert ("targeted trails baseline by 0.6 points R@1 on a single seed: no interval can be "
            "computed") in text  # fmt: skip
    assert "steps" in text and "images seen" in text and "3,840" in text
    two = ReportData(arms=[arm("baseline", 0.5, [100, 100]), arm("naive", 0.6, [120, None])])
    assert two.per_class_paired["naive"]["c"].significant  # +0.1 on both seeds
    _, parser = render(two, tmp_path / "two.html")
    assert "1 of 1 classes have a 95 % paired interval over 2 seeds" in parser.section("deltas")
    assert "120" in parser.section("retrieval")


def _headroom_report(split: str, oracle_r1: list[float]) -> ReportData:
    """Four arms on two seeds; "a" is the class the scenario touched, "b" the rest."""
    r1 = {"baseline": [0.60, 0.62], "naive": [0.61, 0.63], "targeted": [0.65, 0.67],
          "oracle": oracle_r1}  # fmt: skip
    arms = [
        ArmResult(name=arm, seeds=[SeedResult(seed=s, recall={"R@1": v},
                                              per_class_r1={"a": v - 0.2, "b": 0.8})
                                   for s, v in enumerate(values)])
        for arm, values in r1.items()
    ]  # fmt: skip
    affected = affected_class_r1(arms, ["a"], "scenario", split)
    return ReportData(arms=arms, affected_classes=affected,
                      headroom=headroom(arms, "baseline", affected))  # fmt: skip


def test_headroom_section_renders_the_numbers_and_the_sentence(tmp_path: Path) -> None:
    _, parser = render(_headroom_report("fsl", [0.70, 0.72]), tmp_path / "h.html")
    text = " ".join(parser.section("headroom").split())
    assert "Restoring the images the scenario withheld (oracle) gives +10.0 points R@1" in text
    assert "naive recovers 10 %" in text and "targeted recovers 50 %" in text
    assert "targeted: share recovered" in text and "affected classes R@1" in text
    assert "41.0 ± 1.4" in text and "80.0 ± 0.0" in text  # baseline on "a", then on "b"


def test_headroom_section_says_when_no_effect_can_show(tmp_path: Path) -> None:
    _, parser = render(_headroom_report("zsl", [0.61, 0.61]), tmp_path / "h.html")
    text = " ".join(parser.section("headroom").split())
    assert "This scenario cannot show an augmentation effect" in text
    assert "not applicable (zsl: the scenario touches training classes" in text
