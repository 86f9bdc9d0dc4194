import json

import pytest

from atlantis.errors import StageError
from atlantis.store.run import Run, config_hash


def _stage(run, cfg, inputs=None, calls=None, fail=False, name="ingest"):
    with run.stage(name, cfg, inputs or {}) as ctx:
        if ctx.up_to_date:
            return "skipped"
        if calls is not None:
            calls.append(1)
        out = ctx.add_output(ctx.dir / "out.txt")
        out.write_text(json.dumps(cfg))
        ctx.counts["n"] = 3
        if fail:
            raise RuntimeError("boom")
    return "ran"


def test_stage_runs_then_skips_when_unchanged(tmp_path):
    run = Run(tmp_path / "run")
    calls: list[int] = []
    assert _stage(run, {"a": 1}, calls=calls) == "ran"
    assert _stage(run, {"a": 1}, calls=calls) == "skipped"
    m = run.require("ingest")
    assert m.status == "done" and m.counts == {"n": 3} and m.output_hash
    assert "out.txt" in m.outputs and m.timings["total_s"] >= 0


def test_changed_config_or_input_reruns(tmp_path):
    run = Run(tmp_path)
    calls: list[int] = []
    _stage(run, {"a": 1}, calls=calls)
    _stage(run, {"a": 2}, calls=calls)
    _stage(run, {"a": 2}, inputs={"up": "x"}, calls=calls)
    assert len(calls) == 3


def test_missing_output_reruns(tmp_path):
    run = Run(tmp_path)
    _stage(run, {"a": 1})
    (run.stage_dir("ingest") / "out.txt").unlink()
    assert _stage(run, {"a": 1}) == "ran"


def test_failure_is_recorded_and_require_says_which_command(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(RuntimeError):
        _stage(run, {"a": 1}, fail=True)
    m = run.read_manifest("ingest")
    assert m.status == "failed" and "boom" in m.error
    with pytest.raises(StageError, match="atlantis ingest"):
        run.require("ingest")
    with pytest.raises(StageError, match=r"has not run.*atlantis embed"):
        run.require("embed/efficientnet-lite0")


def test_killed_stage_left_running_then_reruns(tmp_path):
    run = Run(tmp_path)
    gen = run.stage("ingest", {"a": 1}, {})
    ctx = gen.__enter__()  # simulate a kill: never exit the context
    assert run.read_manifest("ingest").status == "running"
    del ctx, gen
    assert _stage(run, {"a": 1}) == "ran"


def test_nested_stage_names_listed_in_pipeline_order(tmp_path):
    run = Run(tmp_path)
    _stage(run, {}, name="evaluate/m")
    _stage(run, {}, name="embed/m")
    _stage(run, {}, name="ingest")
    assert [m.stage for m in run.stages()] == ["ingest", "embed/m", "evaluate/m"]


def test_config_hash_excludes_runtime_keys():
    assert config_hash({"a": 1, "device": "cpu"}, {"device"}) == config_hash(
        {"a": 1, "device": "cuda"}, {"device"}
    )
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    run = Run(tmp_path)
    run.stage_dir("ingest").mkdir()
    run.manifest_path("ingest").write_text("{not json")
    with pytest.raises(StageError, match=r"manifest\.json.*delete the folder"):
        run.read_manifest("ingest")
