"""IncorporateFeedback: Algorithm 1 (filtering) and Algorithm 2 (training), and the re-plan."""

from __future__ import annotations

from collections import Counter

import pytest

from atlantis.errors import DataError, StageError
from atlantis.plan.config import FEEDBACK_KEYS, PlanConfig
from atlantis.plan.feedback import (
    FilterStats,
    TrainFeedback,
    filter_alerts,
    filter_rows,
    poor_class_alerts,
    stop_classes,
    train_rows,
)
from atlantis.plan.schema import RoundSummary
from atlantis.plan.stage import FeedbackLimitError, load_plan, load_summary, plan, replan
from atlantis.store.run import Run

from .conftest import write_stage


def stat(total: int, kept: int) -> dict:
    return {"total": total, "kept": kept, "kept_fraction": kept / total if total else 0.0}


STATS = {
    "per_class": {"Arctic Tern": stat(20, 6), "Mallard": stat(10, 5), "Herring Gull": stat(8, 8)},
    "per_domain": {"swimming": stat(30, 9), "flying": stat(10, 10), "none": stat(0, 0)},
}


def test_alerts_only_over_tau_with_exemptions() -> None:
    stats = FilterStats.model_validate(STATS)
    alerts = filter_alerts(stats, tau_domain=0.5, tau_class=0.5)
    # Mallard lost exactly 50%: not *more* than tau, no alert.
    assert [(a.kind, a.target, a.removed) for a in alerts] == [
        ("domain", "swimming", 21), ("class", "Arctic Tern", 14)]  # fmt: skip
    assert alerts[1].message == "14/20 (70%) of class 'Arctic Tern' filtered out > tau_class 0.5"
    assert not any(a.exempt for a in alerts)
    for exemptions in (["domain:Swimming"], ["swimming"]):
        marked = filter_alerts(stats, 0.5, 0.5, exemptions)
        assert [a.exempt for a in marked] == [True, False]
    assert [a.exempt for a in filter_alerts(stats, 0.5, 0.5, ["class:swimming"])] == [False, False]
    assert filter_alerts(stats, 0.8, 0.8) == []


def test_the_filter_stages_row_shape_reads_the_same() -> None:
    rows = {  # what atlantis.filtering.stats writes
        "totals": {"synthetic": 38, "kept": 19},
        "per_class": [{"class": c, "new_class": False, "synthetic": s["total"], "kept": s["kept"],
                       "kept_fraction": s["kept_fraction"], "removed_by_reason": {}} for c, s in STATS["per_class"].items()],
        "per_domain": [{"domain": d, "synthetic": s["total"], "kept": s["kept"],
                        "kept_fraction": s["kept_fraction"]}
                       for d, s in STATS["per_domain"].items()],
    }  # fmt: skip
    assert FilterStats.model_validate(rows) == FilterStats.model_validate(STATS)
    with pytest.raises(ValueError, match="delta sweep"):
        FilterStats.model_validate({"arm": "targeted", "sweep": []})


def test_filter_rows_replace_only_the_flagged_targets(run: Run) -> None:
    plan(run, PlanConfig(budget=100))
    items = load_plan(run, "targeted")
    alerts = filter_alerts(FilterStats.model_validate(STATS), 0.5, 0.5)
    rows = filter_rows(alerts, items, [], cap=100)
    swim = [r for r in rows if r.target == "domain:swimming"]
    tern = [r for r in rows if r.target == "class:Arctic Tern"]
    assert sum(r.count for r in swim) == 21 and {r.domain for r in swim} == {"swimming"}
    assert sum(r.count for r in tern) == 14 and {r.class_name for r in tern} == {"Arctic Tern"}
    assert len(rows) == len(swim) + len(tern)  # nothing for unflagged classes or domains
    assert all(r.step == "filter_feedback" and "filtering feedback:" in r.reason for r in rows)
    # What an earlier round already replaced is not replaced twice; the cap holds.
    again = filter_rows(alerts, items, tern, cap=100)
    assert not [r for r in again if r.target == "class:Arctic Tern"]
    capped = filter_rows(alerts, items, [], cap=5)
    assert sum(r.count for r in capped if r.target == "domain:swimming") == 5
    exempt = filter_alerts(FilterStats.model_validate(STATS), 0.5, 0.5, ["Arctic Tern"])
    assert {r.target for r in filter_rows(exempt, items, [], cap=100)} == {"domain:swimming"}


def test_train_rows_only_for_c_poor() -> None:
    fb = TrainFeedback.model_validate(
        {"c_poor": ["Mallard", "Arctic Tern"], "per_class_r1": {"Mallard": 0.41, "Arctic Tern": 0.2,
         "Herring Gull": 0.9}, "k": 2, "tau": 0.5})  # fmt: skip
    alerts = poor_class_alerts(fb)
    assert [a.message for a in alerts] == ["R@1 0.41 < tau 0.5", "R@1 0.20 < tau 0.5"]
    domains = {c: ["flying", "sitting", "swimming"] for c in ("Mallard", "Arctic Tern")}
    rows = train_rows(alerts, domains, per_class=10)
    assert {r.class_name for r in rows} == {"Mallard", "Arctic Tern"}
    assert sum(r.count for r in rows if r.class_name == "Mallard") == 10
    assert rows[0].reason == "training feedback: R@1 0.41 < tau 0.5"
    per_domain = Counter()
    for r in rows:
        per_domain[r.domain] += r.count
    assert sorted(per_domain.values()) == [6, 7, 7]  # the odd images do not all go to "flying"


def test_replan_from_filtering_feedback_appends_a_round(run: Run) -> None:
    plan(run, PlanConfig(budget=100))
    before = (run.stage_dir("plan/targeted") / "plan.jsonl").read_text()
    with pytest.raises(StageError, match="atlantis filter RUN"):
        replan(run, PlanConfig(), "targeted", "filter")
    write_stage(run, "filter/targeted", {"stats.json": STATS})
    m = replan(run, PlanConfig(exemptions=["Arctic Tern"]), "targeted", "filter")
    after = (run.stage_dir("plan/targeted") / "plan.jsonl").read_text()
    assert after.startswith(before)  # round 0 untouched
    new = load_plan(run, "targeted", rounds=[1])
    # round 0 left 20 of the 100 for feedback (plan.feedback_reserve 0.2); the round asked
    # for 21 and gets the 20 left: feedback draws from the budget, never beyond it
    assert len(load_plan(run, "targeted", rounds=[0])) == 80
    assert len(new) == 20 and {it.domain for it in new} == {"swimming"}
    assert all(it.round == 1 and it.step == "filter_feedback" for it in new)
    assert len({it.id for it in load_plan(run, "targeted")}) == 100
    s = load_summary(run, "targeted")
    assert (
        s.n_items == 100 == s.budget and s.reserve == 20 and [r.round for r in s.rounds] == [0, 1]
    )
    assert "asked for 21 images, 20 left of the budget of 100" in s.rounds[1].note
    assert [(a.target, a.exempt) for a in s.rounds[1].alerts] == [
        ("swimming", False),
        ("Arctic Tern", True),
    ]
    assert "round-1:filter/targeted" in m.input_hashes and m.counts["rounds"] == 2
    # The same feedback again adds nothing; a plain plan re-run keeps the round.
    assert replan(run, PlanConfig(), "targeted", "filter").finished_at == m.finished_at
    assert plan(run, PlanConfig(budget=100)).finished_at == m.finished_at
    assert len(load_plan(run, "targeted")) == 100


def test_the_loop_is_capped_by_max_rounds(run: Run) -> None:
    plan(run, PlanConfig(budget=40))
    for n in range(3):  # the filter runs again on the grown plan and still removes a lot
        stats = {"per_class": {"Arctic Tern": stat(20 + 10 * n, 6)}}
        write_stage(run, "filter/targeted", {"stats.json": stats})
        if n < 2:
            replan(run, PlanConfig(max_rounds=2), "targeted", "filter")
    with pytest.raises(FeedbackLimitError, match=r"plan\.max_rounds=2"):
        replan(run, PlanConfig(max_rounds=2), "targeted", "filter")
    summary = load_summary(run, "targeted")
    # Round 0 plans 32 and leaves 8 of the 40 for feedback: round 1 asks to replace the 14
    # removed and gets the 8 left; round 2 finds the budget spent and adds nothing.
    assert [(r.round, r.n_items) for r in summary.rounds] == [(0, 32), (1, 8), (2, 0)]
    assert summary.n_items == summary.budget == 40
    assert "budget spent: 40 of 40 planned" in summary.rounds[2].note


def test_replan_from_training_feedback(run: Run) -> None:
    plan(run, PlanConfig(budget=40))
    write_stage(
        run,
        "train/targeted",
        {
            "feedback.json": {
                "c_poor": ["Mallard", "Dodo"],
                "per_class_r1": {"Mallard": 0.41},
                "k": 2,
                "tau": 0.5,
            }
        },
    )
    replan(run, PlanConfig(feedback_per_class=6), "targeted", "train")
    new = load_plan(run, "targeted", rounds=[1])
    assert len(new) == 6 and {it.class_name for it in new} == {"Mallard"}
    assert {it.domain for it in new} == {"flying", "sitting", "swimming"}
    assert new[0].reason == "training feedback: R@1 0.41 < tau 0.5"
    rnd = load_summary(run, "targeted").rounds[1]
    assert rnd.source == "train" and "Dodo" in rnd.note


def test_a_stale_plan_or_a_bad_feedback_file_is_refused(run: Run) -> None:
    plan(run, PlanConfig(budget=40))
    write_stage(run, "filter/targeted", {"stats.json": {"per_class": {"A": {"kept": 1}}}})
    with pytest.raises(DataError, match=r"stats.json.*per_class.A.total"):
        replan(run, PlanConfig(), "targeted", "filter")
    write_stage(run, "insight", {"insight.json": "{}"}, config={"changed": True})
    with pytest.raises(StageError, match="out of date"):
        replan(run, PlanConfig(), "targeted", "filter")


# -- stopping a class the source does not serve -------------------------------------------

UNSERVED = {
    "per_class": {"Arctic Tern": stat(20, 0), "Mallard": stat(10, 5), "Herring Gull": stat(8, 8)},
    "per_domain": {"swimming": stat(30, 5), "flying": stat(8, 8)},
}


def test_a_class_kept_at_most_stop_kept_share_is_stopped() -> None:
    stats = FilterStats.model_validate(UNSERVED)
    got = stop_classes(stats, [], max_kept=0.05, after=1)
    assert list(got) == ["Arctic Tern"]
    assert got["Arctic Tern"].startswith("0/20 (0%) of class 'Arctic Tern' kept")
    assert "plan.stop_after 1" in got["Arctic Tern"]
    assert stop_classes(stats, [], 0.05, after=0) == {}  # 0: never stop
    assert list(stop_classes(stats, [], max_kept=0.5, after=1)) == ["Arctic Tern", "Mallard"]
    # stop_after 2: the filter round before must have found it unserved too
    assert stop_classes(stats, [], 0.05, after=2) == {}  # no filter round before
    alerts = filter_alerts(stats, 0.5, 0.5)
    rnd = RoundSummary(round=1, source="filter", alerts=alerts)
    assert list(stop_classes(stats, [rnd], 0.05, after=2)) == ["Arctic Tern"]
    served = RoundSummary(round=1, source="filter", alerts=[a for a in alerts if a.kind != "class"])
    assert stop_classes(stats, [served], 0.05, after=2) == {}
    assert {"stop_after", "stop_kept_share", "stop_min_images"} <= FEEDBACK_KEYS  # not round 0
    # too few images to judge: 0 of 2 kept says little about what the source can make
    few = FilterStats.model_validate({"per_class": {"Arctic Tern": {"total": 2, "kept": 0}}})
    assert stop_classes(few, [], 0.05, after=1, min_images=3) == {}
    assert list(stop_classes(few, [], 0.05, after=1, min_images=2)) == ["Arctic Tern"]


def test_filter_rows_never_ask_for_a_stopped_class(run: Run) -> None:
    plan(run, PlanConfig(budget=100))
    items = load_plan(run, "targeted")
    alerts = filter_alerts(FilterStats.model_validate(UNSERVED), 0.5, 0.5)
    rows = filter_rows(alerts, items, [], cap=100, stopped={"Arctic Tern"})
    assert "Arctic Tern" not in {r.class_name for r in rows}
    assert "class:Arctic Tern" not in {r.target for r in rows}
    # the swimming alert's 25 replacements go to the swimming classes still served
    swim = [r for r in rows if r.target == "domain:swimming"]
    assert sum(r.count for r in swim) == 25


def test_replan_stops_asking_for_a_class_with_nothing_kept(run: Run) -> None:
    plan(run, PlanConfig(budget=100))
    write_stage(run, "filter/targeted", {"stats.json": {"per_class": UNSERVED["per_class"]}})
    m = replan(run, PlanConfig(), "targeted", "filter")
    s = load_summary(run, "targeted")
    rnd = s.rounds[1]
    assert [a.target for a in rnd.alerts] == ["Arctic Tern"]  # alerted, but not re-planned
    assert rnd.n_items == 0 and load_plan(run, "targeted", rounds=[1]) == []
    assert list(rnd.stopped) == ["Arctic Tern"]
    assert "stopped asking for 'Arctic Tern': the source does not serve it (0/20" in rnd.note
    assert "share of the budget stays unplanned" in rnd.note
    assert s.n_items == 80 and s.budget == 100  # the reserve stays unplanned
    assert "Arctic Tern" in m.info["stopped_classes"]
    assert "Round 1 stopped asking for 'Arctic Tern'" in s.policy  # `atlantis plan` prints it
    # A later round, of either algorithm, does not ask for it again, and says so.
    write_stage(run, "train/targeted", {"feedback.json": {
        "c_poor": ["Arctic Tern", "Mallard"], "per_class_r1": {"Arctic Tern": 0.0, "Mallard": 0.3},
        "k": 2, "tau": 0.5}})  # fmt: skip
    replan(run, PlanConfig(feedback_per_class=6), "targeted", "train")
    rnd2 = load_summary(run, "targeted").rounds[2]
    assert {it.class_name for it in load_plan(run, "targeted", rounds=[2])} == {"Mallard"}
    assert rnd2.stopped == {}
    assert "not asked again, stopped in an earlier round as not served by the source: " \
        "Arctic Tern" in rnd2.note  # fmt: skip


def test_stop_after_zero_keeps_replanning(run: Run) -> None:
    plan(run, PlanConfig(budget=100))
    write_stage(run, "filter/targeted", {"stats.json": {"per_class": UNSERVED["per_class"]}})
    replan(run, PlanConfig(stop_after=0), "targeted", "filter")
    rnd = load_summary(run, "targeted").rounds[1]
    assert rnd.stopped == {} and rnd.n_items == 20  # 20 left of the budget: all to the tern
    assert {it.class_name for it in load_plan(run, "targeted", rounds=[1])} == {"Arctic Tern"}
