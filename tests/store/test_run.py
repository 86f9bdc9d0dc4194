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


def test_a_deliberate_pause_is_recorded_as_paused_not_failed(tmp_path):
    from atlantis.errors import StagePaused

    run = Run(tmp_path)
    with pytest.raises(StagePaused), run.stage("train/baseline", {"a": 1}) as ctx:
        ctx.counts["epochs_done"] = 1
        raise StagePaused("paused after epoch 1")
    m = run.read_manifest("train/baseline")
    assert m.status == "paused" and m.error is None and m.output_hash is None
    assert m.counts == {"epochs_done": 1} and m.info["paused"] == "paused after epoch 1"
    with pytest.raises(StageError, match=r"is 'paused'.*Resume it with: atlantis train RUN"):
        run.require("train/baseline")
    with pytest.raises(RuntimeError), run.stage("train/baseline", {"a": 1}):
        raise RuntimeError("boom")  # a real error after a pause is a failure
    assert run.read_manifest("train/baseline").status == "failed"


@pytest.mark.parametrize(
    ("stage", "command"),
    [
        ("generate/naive", "atlantis generate RUN --arm naive"),
        ("filter/naive", "atlantis filter RUN --arm naive"),
        ("filter/targeted", "atlantis filter RUN --arm targeted"),
        ("plan/naive", "atlantis plan RUN --budget N --planner naive"),
        ("plan/mine", "atlantis plan RUN --budget N --planner targeted --arm mine"),
        ("plan/testset", "loop.synthetic_test_per_class"),
        ("train/naive", "atlantis train RUN --arm naive"),
        ("train/targeted/delta-1.5", "atlantis train RUN --arm targeted --delta 1.5"),
        ("train/baseline/seed-1", "atlantis run CONFIG --out RUN"),
        ("ingest", "atlantis ingest --format FORMAT"),
        ("embed/efficientnet-lite0", "atlantis embed RUN"),
    ],
)
def test_stage_command_names_the_arm_of_the_stage(stage, command):
    from atlantis.store.run import stage_command

    assert command in stage_command(stage)
    if "/" in stage and stage.split("/")[1] in ("naive", "mine"):
        assert "targeted " not in stage_command(stage).replace("--planner targeted --arm", "")


def test_require_of_a_failed_naive_stage_suggests_the_naive_command(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(RuntimeError):
        _stage(run, {"a": 1}, fail=True, name="generate/naive")
    with pytest.raises(StageError, match=r"is 'failed'.*atlantis generate RUN --arm naive$"):
        run.require("generate/naive")
