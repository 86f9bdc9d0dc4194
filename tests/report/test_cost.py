"""The cost model: the paper's arithmetic, coefficients measured on a run, and the CLI."""

import json

import pytest
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.errors import ConfigError
from atlantis.report.cost import (
    PAPER_A100,
    PAPER_A100_TURBO,
    TERMS,
    CostCoefficients,
    coefficients_from_run,
    estimate,
    is_paper_default,
)
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run

runner = CliRunner()


def write_stage(run: Run, name: str, counts=None, timings=None, info=None, total_s=None,
                inputs=None) -> None:  # fmt: skip
    """A finished stage through the real Run API, with chosen counts and timings.

    ``total_s`` is the stage's own wall time, which a test cannot choose while the stage
    runs, so it is set afterwards in the manifest the stage wrote.
    """
    with run.stage(name, {"name": name}, inputs or {}) as ctx:
        out = ctx.add_output(ctx.dir / "out.txt")
        out.write_text(name)
        ctx.counts.update(counts or {})
        ctx.timings.update(timings or {})
        ctx.info.update(info or {})
    if total_s is not None:
        m = run.read_manifest(name)
        m = m.model_copy(update={"timings": {**m.timings, "total_s": total_s}})
        atomic_write_text(run.manifest_path(name), m.model_dump_json(indent=2))


@pytest.fixture
def full_run(tmp_path) -> Run:
    run = Run(tmp_path / "run")
    write_stage(run, "ingest", {"train_images": 100})
    write_stage(run, "caption", {"images": 120, "computed": 100, "cached": 20},
                {"caption_s": 50.0})  # fmt: skip
    write_stage(run, "embed/other", {"images": 120, "computed": 120}, {"embed_s": 999.0})
    write_stage(run, "embed/vit", {"images": 120, "computed": 80}, {"embed_s": 40.0})
    write_stage(run, "insight", {"train_images": 100}, total_s=20.0,
                inputs={"caption": "x", "embed/vit": "y"})  # fmt: skip
    write_stage(run, "plan/targeted", {"items": 10, "rounds": 1},
                {"plan_s": 35.0, "objective_s": 3.0, "reference_s": 2.0,
                 "descriptions_s": 30.0}, {"planner": "targeted"})  # fmt: skip
    write_stage(run, "generate/targeted", {"made": 8, "planned": 10, "reused": 2},
                {"load_s": 45.0, "generate_s": 100.0, "per_image_s": 12.0},
                {"kind": "synthetic"})  # fmt: skip
    write_stage(run, "filter/targeted", {"synthetic": 10},
                {"embed_s": 6.0, "filter_s": 8.0, "grids_s": 50.0},
                {"sweep": True, "deltas": ["delta-1.5", "delta-2"]})  # fmt: skip
    write_stage(run, "generate/naive", {"made": 4}, {"load_s": 1000.0, "per_image_s": 99.0})
    return run


def test_paper_defaults_give_72165_seconds():
    est = estimate(PAPER_A100, 1000, 2000)
    assert est.total_s == pytest.approx(72_165.0)
    assert est.total_hours == pytest.approx(72_165 / 3600)
    assert est.dominant.key == "k_s"  # generation dominates


def test_turbo_variant_hand_computed():
    # 60 + (2 + 0.1) * 1000 + 5 + (3 + 8 + 2) * 2000
    assert estimate(PAPER_A100_TURBO, 1000, 2000).total_s == pytest.approx(28_165.0)
    assert "Turbo" in PAPER_A100_TURBO.source["k_s"]


def test_breakdown_sums_to_total_and_shares_to_one():
    coeffs = CostCoefficients(gamma=1, k_f=2, k_i=3, k_a=4, k_d=5, k_s=6, k_o=7)
    est = estimate(coeffs, 10, 100)
    assert [t.key for t in est.terms] == list(TERMS)
    assert sum(t.seconds for t in est.terms) == pytest.approx(est.total_s)
    assert sum(t.share for t in est.terms) == pytest.approx(1.0)
    by = {t.key: t for t in est.terms}
    assert (by["k_i"].count, by["k_i"].seconds) == (10, 30.0)
    assert (by["k_a"].count, by["k_a"].seconds) == (1, 4.0)
    assert (by["k_o"].count, by["k_o"].seconds) == (100, 700.0)


def test_zero_counts_and_negative_counts():
    est = estimate(CostCoefficients(gamma=0, k_a=0), 0, 0)
    assert est.total_s == 0 and all(t.share == 0 for t in est.terms)
    with pytest.raises(ConfigError, match="number of synthetic images is -1"):
        estimate(PAPER_A100, 5, -1)


def test_coefficients_from_run_measure_each_stage(full_run):
    c = coefficients_from_run(full_run)
    assert "arm targeted" in c.label
    assert c.gamma == pytest.approx(45.0)  # only the chosen arm's loading
    assert c.k_f == pytest.approx(50 / 100 + 40 / 80)  # computed images, the insight's embedder
    assert "embed/vit" in c.source["k_f"]
    assert c.k_i == pytest.approx(20 / 100)
    assert c.k_a == pytest.approx(5.0)
    assert c.k_d == pytest.approx(3.0)
    assert c.k_s == pytest.approx(12.0)
    assert c.k_o == pytest.approx((6 + 8 / 2) / 10)  # a two-delta sweep filters twice
    assert not any(is_paper_default(s) for s in c.source.values())


def test_other_arm_and_plan_without_split_timers(full_run):
    write_stage(full_run, "plan/naive", {"items": 4}, {"plan_s": 2.0}, {"planner": "naive"})
    c = coefficients_from_run(full_run, arm="naive")
    assert c.gamma == pytest.approx(1000.0) and c.k_s == pytest.approx(99.0)
    assert c.k_a == 0.0 and c.k_d == pytest.approx(0.5)
    assert c.source["k_o"] == "paper A100 default (stage filter/naive not in run)"
    assert c.k_o == PAPER_A100.k_o


def test_missing_stages_fall_back_with_a_note(tmp_path):
    run = Run(tmp_path / "run")
    write_stage(run, "ingest", {"train_images": 10})
    write_stage(run, "generate/targeted", {"made": 5}, {"generate_s": 1.0},
                {"kind": "retrieved"})  # fmt: skip
    c = coefficients_from_run(run)
    for key in ("k_f", "k_i", "k_a", "k_d", "k_o"):
        assert getattr(c, key) == getattr(PAPER_A100, key)
        assert is_paper_default(c.source[key]), c.source[key]
    assert c.source["k_f"] == "paper A100 default (stage caption not in run)"
    assert c.source["k_i"] == "paper A100 default (stage insight not in run)"
    assert c.k_s == pytest.approx(0.2) and "retrieval, not generation" in c.source["k_s"]
    assert c.gamma == 0.0 and "not measured" in c.source["gamma"]


def test_unfinished_or_idle_stages_fall_back(tmp_path):
    run = Run(tmp_path / "run")
    write_stage(run, "caption", {"images": 5, "computed": 0, "cached": 5}, {"caption_s": 0.1})
    write_stage(run, "generate/targeted", {"made": 0, "reused": 5})
    with pytest.raises(RuntimeError), run.stage("insight", {}) as ctx:
        ctx.counts["train_images"] = 5
        raise RuntimeError("killed")
    c = coefficients_from_run(run)
    assert "all cached" in c.source["k_f"] and c.k_f == PAPER_A100.k_f
    assert "made no new image" in c.source["k_s"] and c.k_s == PAPER_A100.k_s
    assert c.source["k_i"] == "paper A100 default (stage insight not finished)"


def test_from_run_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        coefficients_from_run(Run(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no stage manifest"):
        coefficients_from_run(Run(tmp_path / "empty"))


def invoke(*args):
    return runner.invoke(app, ["estimate", *map(str, args)], catch_exceptions=False)


def test_cli_paper_defaults_prints_72165():
    res = invoke("--originals", 1000, "--synthetic", 2000, "--paper-defaults")
    assert res.exit_code == 0, res.output
    assert "72,165 s" in res.output and "k_s" in res.output


def test_cli_json_parses_and_turbo(full_run):
    res = invoke("--originals", 1000, "--synthetic", 2000, "--turbo", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["total_s"] == pytest.approx(28_165.0)
    assert [t["key"] for t in data["terms"]] == list(TERMS)
    res = invoke("--originals", 100, "--synthetic", 10, "--from-run", full_run.root, "--json")
    assert res.exit_code == 0, res.output
    terms = {t["key"]: t for t in json.loads(res.stdout)["terms"]}
    assert terms["k_s"]["seconds"] == pytest.approx(120.0)


def test_cli_from_run_table_lists_sources(full_run):
    res = invoke("--originals", 100, "--synthetic", 10, "--from-run", full_run.root, "--arm",
                 "naive")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "where each coefficient comes from" in res.output
    assert "k_o: paper A100 figures, not measured" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (("--originals", -5, "--synthetic", 1), "number of original images is -5"),
        (("--originals", 1, "--synthetic", 1, "--from-run", "/no/such/run"), "does not exist"),
        (("--originals", 1, "--synthetic", 1, "--from-run", ".", "--paper-defaults"),
         "give only one"),
        (("--originals", 1, "--synthetic", 1, "--arm", "naive"), "give --from-run too"),
    ],
)  # fmt: skip
def test_cli_errors(args, message):
    res = invoke(*args)
    assert res.exit_code == 2
    assert message in res.output
