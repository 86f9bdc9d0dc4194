"""Bad input through the CLI: one red ``error:`` line that names the culprit, exit 2.

Each case is what a user can hand a command (a broken array, a wrong option, a config that
names a preset or a non-checkpoint file); the test runs it through the real typer app and
checks that the message names the file, field or value, and that no traceback escapes
(``catch_exceptions=False``: an uncaught exception fails the test instead of hiding in the
result).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from atlantis.cli.main import app

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_clear_error(res, *culprits: str) -> None:
    """Exit 2, one ``error:`` line naming every culprit, no traceback, not click's Aborted."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "Aborted" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.output
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


# -- atlantis recall: every way an array can be wrong -------------------------------------------

GOOD = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
LABELS = np.array([0, 0, 1, 1])


def _nan_row() -> np.ndarray:
    x = GOOD.copy()
    x[2, 0] = np.nan
    return x


def _inf_row() -> np.ndarray:
    x = GOOD.copy()
    x[1, 1] = np.inf
    return x


BAD_EMBEDDINGS = {
    "nan-row": (_nan_row(), ["NaN or inf", "row 2"]),
    "inf-row": (_inf_row(), ["NaN or inf", "row 1"]),
    "1-d": (np.array([1.0, 2.0, 3.0, 4.0]), ["2-D", "shape (4,)"]),
    "3-d": (np.zeros((4, 2, 2)), ["2-D", "shape (4, 2, 2)", "reshape"]),
    "zero-rows": (np.zeros((0, 8), np.float32), ["empty", "shape (0, 8)"]),
    "one-row": (np.ones((1, 8), np.float32), ["1 row(s)", "at least 2"]),
    "empty-array": (np.array([]), ["empty", "shape (0,)"]),
    "strings": (np.array([["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]]), ["dtype <U1"]),
    "no-columns": (np.zeros((4, 0), np.float32), ["empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD_EMBEDDINGS))
def test_recall_bad_embeddings_name_the_file(tmp_path: Path, case: str) -> None:
    array, words = BAD_EMBEDDINGS[case]
    emb = tmp_path / f"{case}.npy"
    np.save(emb, array)
    np.save(tmp_path / "labels.npy", LABELS)
    res = invoke("recall", "--embeddings", emb, "--labels", tmp_path / "labels.npy")
    assert_clear_error(res, f"{case}.npy", *words)


def test_recall_zero_byte_files_are_not_aborted(tmp_path: Path) -> None:
    """An empty file made click print only ``Aborted.`` (numpy raised EOFError)."""
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "e.npy", GOOD)
    np.save(tmp_path / "l.npy", LABELS)
    res = invoke("recall", "--embeddings", tmp_path / "empty.npy", "--labels", tmp_path / "l.npy")
    assert_clear_error(res, "empty.npy", "0 bytes", "numpy.save")
    res = invoke("recall", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "empty.npy")
    assert_clear_error(res, "empty.npy", "labels", "0 bytes")


def test_recall_truncated_npz_and_folder_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "l.npy", LABELS)
    np.save(tmp_path / "full.npy", GOOD)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:20])  # the header cut short
    (tmp_path / "cut-data.npy").write_bytes(data[:-8])  # the last row cut short
    np.savez(tmp_path / "arch.npz", x=GOOD)
    for name in ("cut.npy", "cut-data.npy", "arch.npz"):
        res = invoke("recall", "--embeddings", tmp_path / name, "--labels", tmp_path / "l.npy")
        assert_clear_error(res, name)
    res = invoke("recall", "--embeddings", tmp_path, "--labels", tmp_path / "l.npy")
    assert_clear_error(res, str(tmp_path), "folder")


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (np.array([0, 0, 1]), ["3 labels", "4 embedding rows", "e.npy"]),
        (np.array([[0], [0], [1], [1]]), ["1-D", "ravel"]),
        (np.array([0.0, np.nan, 1.0, 1.0]), ["NaN", "row 1"]),
        (np.array([1 + 1j, 2j, 0j, 1j]), ["complex"]),
    ],
    ids=["other-length", "column", "nan-label", "complex"],
)
def test_recall_bad_labels_name_the_file(tmp_path: Path, labels: np.ndarray, words) -> None:
    np.save(tmp_path / "e.npy", GOOD)
    np.save(tmp_path / "lab.npy", labels)
    res = invoke("recall", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "lab.npy")
    assert_clear_error(res, "lab.npy", *words)


def test_recall_unknown_distance_lists_the_valid_ones(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", GOOD)
    np.save(tmp_path / "l.npy", LABELS)
    res = invoke("recall", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
                 "--distance", "manhattan")  # fmt: skip
    assert_clear_error(res, "--distance", "'manhattan'", "cosine, euclidean, poincare")


def test_recall_points_outside_the_ball_name_the_file(tmp_path: Path) -> None:
    """A check only the distance can make (Poincaré: inside the ball) still names the file."""
    np.save(tmp_path / "big.npy", GOOD * 10)
    np.save(tmp_path / "l.npy", LABELS)
    res = invoke("recall", "--embeddings", tmp_path / "big.npy", "--labels", tmp_path / "l.npy",
                 "--distance", "poincare", "--k", "1,2")  # fmt: skip
    assert_clear_error(res, "big.npy", "inside the ball")


def test_recall_integer_embeddings_are_cast_to_float(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", (GOOD * 10).astype(np.int64))
    np.save(tmp_path / "f.npy", GOOD * 10)
    np.save(tmp_path / "l.npy", LABELS)
    as_int = invoke("recall", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
                    "--k", "1,2", "--json")  # fmt: skip
    assert as_int.exit_code == 0, as_int.output
    as_float = invoke("recall", "--embeddings", tmp_path / "f.npy", "--labels", tmp_path / "l.npy",
                      "--k", "1,2", "--json")  # fmt: skip
    assert json.loads(as_int.stdout) == json.loads(as_float.stdout) == {"R@1": 1.0, "R@2": 1.0}


def test_recall_string_labels_work(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", GOOD)
    np.save(tmp_path / "l.npy", np.array(["cat", "cat", "dog", "dog"]))
    res = invoke("recall", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
                 "--k", "1", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"R@1": 1.0}


# -- a run folder for the stage cases -------------------------------------------------------------

TINY_TRAIN = ["--set", "train.backbone=timm:test_vit", "--set", "train.pretrained=false",
              "--set", "train.image_size=32", "--set", "train.embedding_dim=16",
              "--set", "train.batch_size=12", "--set", "train.m_per_class=3",
              "--set", "train.lr=0.001", "--set", "train.device=cpu",
              "--set", "train.tensorboard=false", "--set", "train.epochs=2"]  # fmt: skip


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    """A run with 16 coloured-square classes ingested (zsl: 8 train, 8 test)."""
    from tests.train.conftest import make_dataset

    root = make_dataset(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    res = invoke("ingest", "--format", "imagefolder", "--root", root, "--out", run)
    assert res.exit_code == 0, res.output
    return run


def test_paused_training_shows_as_paused_then_resumes(ingested: Path) -> None:
    res = invoke("train", ingested, *TINY_TRAIN, "--epochs-this-call", "1")
    assert res.exit_code == 0, res.output
    assert "paused after epoch 1" in res.output
    stages = {s["stage"]: s for s in json.loads(invoke("status", ingested, "--json").stdout)}
    assert stages["train/baseline"]["status"] == "paused"
    assert stages["train/baseline"]["error"] is None
    table = invoke("status", ingested).output
    assert "paused" in table and "failed" not in table and "epochs_done=1" in table
    # what needs the finished stage says it is paused and how to resume it
    res = invoke("attack", ingested, "--arm", "baseline")
    assert_clear_error(res, "train/baseline", "paused", "atlantis train", "--arm baseline")
    res = invoke("train", ingested, *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    assert "epoch 2/2" in res.output and "epoch 1/2" not in res.output  # resumed, not redone
    stages = {s["stage"]: s for s in json.loads(invoke("status", ingested, "--json").stdout)}
    assert stages["train/baseline"]["status"] == "done"


def test_missing_stage_suggests_the_command_for_the_arm_asked_about(ingested: Path) -> None:
    """``filter --arm naive`` without a naive generate stage used to suggest the targeted one."""
    res = invoke("filter", ingested, "--arm", "naive")
    assert_clear_error(res, "generate/naive", "atlantis generate RUN --arm naive")
    assert "--arm targeted" not in res.output
    res = invoke("generate", ingested, "--arm", "naive")
    assert_clear_error(res, "plan/naive", "--planner naive")
    res = invoke("train", ingested, "--arm", "naive", *TINY_TRAIN)
    assert_clear_error(res, "filter/naive", "atlantis filter RUN --arm naive")
    res = invoke("attack", ingested, "--arm", "naive")
    assert_clear_error(res, "train/naive", "--arm naive")


@pytest.mark.parametrize("backbone", ["timm:test_vit", "efficientnet-lite0"])
def test_a_text_file_as_pretrained_weights_fails_naming_it(ingested: Path, tmp_path: Path,
                                                           backbone: str) -> None:  # fmt: skip
    """It used to be ignored: the default backbone trained from its own weights anyway."""
    weights = tmp_path / "weights.txt"
    weights.write_text("not weights\n")
    pairs = zip(TINY_TRAIN[::2], TINY_TRAIN[1::2], strict=True)
    tiny = [x for flag, value in pairs if not value.startswith(("train.pretrained", "train.backbone"))
            for x in (flag, value)]  # fmt: skip
    res = invoke("train", ingested, *tiny, "--set", f"train.backbone={backbone}",
                 "--set", f"train.pretrained={weights}")  # fmt: skip
    assert_clear_error(res, "train.pretrained", "weights.txt")
    assert ("is not a checkpoint" in res.output) == backbone.startswith("timm:")
    assert "torch.save" in res.output or "timm:<name> backbones only" in res.output
    assert not (ingested / "train" / "baseline" / "last.pt").exists()  # nothing trained


def test_a_run_yaml_can_name_a_training_preset(ingested: Path, tmp_path: Path) -> None:
    """``train: {preset: demo}`` used to be rejected as an unknown key."""
    import yaml

    from atlantis.train.config import PRESETS

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"train": {
        "preset": "demo", "backbone": "timm:test_vit", "pretrained": False, "image_size": 32,
        "embedding_dim": 16, "trainable_blocks": 1, "batch_size": 12, "m_per_class": 3,
        "epochs": 1, "tensorboard": False}}))  # fmt: skip
    res = invoke("train", ingested, "--config", config)
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((ingested / "config.yaml").read_text())["train"]
    assert saved["epochs"] == 1 and saved["backbone"] == "timm:test_vit"  # the file's own keys
    for key in ("head_init", "cache_trunk", "augment", "lr"):  # the rest from the preset
        assert saved[key] == PRESETS["demo"][key], key
    config.write_text("train:\n  preset: quick\n")
    res = invoke("train", ingested, "--config", config)
    assert_clear_error(res, "train.yaml", "train.preset", "'quick'", "dino, demo")


# -- atlantis run CONFIG --check ----------------------------------------------------------------


def _run_config(tmp_path: Path, **sections: dict) -> Path:
    """A small, valid run config over a real image tree and a real retrieval pool."""
    import yaml

    from tests.train.conftest import make_dataset

    root = make_dataset(tmp_path / "data", per_class=3)
    pool = make_dataset(tmp_path / "pool", per_class=1, seed=1)
    cfg = {"data": {"format": "imagefolder", "root": str(root)},
           "caption": {"captioner": "metadata"}, "insight": {"llm": "rules"},
           "plan": {"budget": 8, "llm": "rules"},
           "generate": {"source": "retrieve", "options": {"pool": str(pool)}},
           "train": {"backbone": "timm:test_vit", "pretrained": False, "image_size": 32},
           "loop": {"arms": ["baseline", "targeted"], "seeds": 1}}  # fmt: skip
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_check_says_ok_and_writes_nothing(tmp_path: Path) -> None:
    config = _run_config(tmp_path, train={"preset": "demo", "backbone": "timm:test_vit",
                                          "pretrained": False, "image_size": 32})  # fmt: skip
    out = tmp_path / "would-be-run"
    res = invoke("run", config, "--out", out, "--check")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("OK: ") and str(out) in res.output
    assert not out.exists()  # nothing ran, nothing was written


def test_run_check_lists_every_problem_naming_each_key(tmp_path: Path) -> None:
    config = _run_config(
        tmp_path,
        data={"root": str(tmp_path / "no-such-data")},
        caption={"captioner": "nosuchcaptioner"},
        embed={"embedder": "bogus:thing"},
        insight={"llm": "nosuchllm"},
        generate={"options": {"pool": str(tmp_path / "no-such-pool")}},
        filter={"embedder": "nope:x"},
        train={"backbone": "timm:not_a_model_name", "loss": "hinge"},
    )
    res = invoke("run", config, "--out", tmp_path / "r", "--check")
    assert_clear_error(res, "small.yaml", "8 problem(s)")
    problems = [line.strip() for line in res.output.splitlines() if line.strip().startswith("- ")]
    expected = {"data.root": "no-such-data", "caption.captioner": "nosuchcaptioner",
                "embed.embedder": "bogus", "insight.llm": "nosuchllm",
                "generate.source": "no-such-pool", "filter.embedder": "nope",
                "train.backbone": "not_a_model_name",
                "train.loss": "hinge"}  # fmt: skip
    assert len(problems) == len(expected), problems
    for key, culprit in expected.items():
        assert any(p.startswith(f"- {key}:") and culprit in p for p in problems), (key, problems)
    assert not (tmp_path / "r").exists()


def test_run_check_refuses_a_text_file_as_weights_and_unknown_keys(tmp_path: Path) -> None:
    weights = tmp_path / "weights.txt"
    weights.write_text("not weights\n")
    config = _run_config(tmp_path, train={"pretrained": str(weights)})
    res = invoke("run", config, "--check")
    assert_clear_error(res, "small.yaml", "1 problem(s)")
    assert "- train.backbone: train.pretrained:" in res.output and "weights.txt" in res.output
    config.write_text(config.read_text() + "trian: {epochs: 1}\n")
    res = invoke("run", config, "--check")
    assert res.exit_code == 2 and "unknown key 'trian'" in res.output, res.output


# -- the siblings: the same kind of bad value in the other commands -------------------------------


@pytest.mark.parametrize(
    ("args", "culprits"),
    [
        (["evaluate", "{run}", "--k", "0"], ["--k '0'", "positive"]),
        (["evaluate", "{run}", "--k", "1,x"], ["--k '1,x'", "comma-separated"]),
        (["evaluate", "{run}", "--distance", "manhattan"], ["eval.distance", "'manhattan'"]),
        (["attack", "{run}", "--steps", "ten"], ["--steps 'ten'", "1,10"]),
        (["attack", "{run}", "--eps", ","], ["--eps ','", "at least one"]),
        (["attack", "{run}", "--eps", "2"], ["attack.eps", "2.0"]),
        (["train", "{run}", "--epochs-this-call", "-1"], ["--epochs-this-call", "-1", "0 or more"]),
        (["train", "{run}", "--arm", "bad/arm"], ["'bad/arm'"]),
        (["train", "{run}", "--preset", "quick"], ["--preset", "'quick'", "dino, demo"]),
        (["estimate", "--originals", "-5", "--synthetic", "1"], ["-5", "0 or more"]),
        (["embed", "{run}", "--device", "nonsense"], ["'nonsense'", "cpu, cuda"]),
        (["recall", "--embeddings", "{run}/none.npy", "--labels", "x.npy"], ["none.npy"]),
        (["caption", "{run}", "--captioner", "tags", "--option", "top_k=abc"], ["top_k", "'abc'"]),
        (
            ["caption", "{run}", "--captioner", "tags", "--option", "min_prob=x"],
            ["min_prob", "'x'"],
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0][0] != "-" else None,
)
def test_bad_values_in_every_command_are_one_clear_line(ingested: Path, args, culprits) -> None:
    res = invoke(*(a.replace("{run}", str(ingested)) for a in args))
    assert_clear_error(res, *culprits)


def test_the_list_commands_have_the_clear_error_exit() -> None:
    """``embedders`` and its siblings lacked ``friendly_errors``: a registry error would have
    been a traceback; they list what is registered."""
    from atlantis.cli import caption_cmd, generate_cmd, main

    for command in (main.embedders, caption_cmd.captioners, generate_cmd.sources):
        assert hasattr(command, "__wrapped__"), command.__name__  # functools.wraps of the wrapper
    for name, word in (("embedders", "efficientnet-lite0"), ("captioners", "metadata"),
                       ("sources", "retrieve")):  # fmt: skip
        res = invoke(name)
        assert res.exit_code == 0 and word in res.output, res.output


# -- train.steps: a fixed number of optimiser steps in validation periods (issue 11) ------------


@pytest.mark.parametrize(
    ("steps", "culprits"),
    [
        ("0", ["train.steps (0)", "1 or more"]),
        ("1", ["train.steps (1)", "train.epochs (2)", "validation periods"]),
    ],
)
def test_train_steps_that_contradict_the_epochs_name_both_keys(ingested: Path, steps: str,
                                                               culprits: list[str]) -> None:  # fmt: skip
    res = invoke("train", ingested, *TINY_TRAIN, "--set", f"train.steps={steps}")
    assert_clear_error(res, "invalid train config", *culprits)
    assert "train.:" not in res.output  # a check across keys names them itself
    assert not (ingested / "train" / "baseline").exists()  # nothing trained


def test_run_config_with_steps_below_its_epochs_names_both_keys(tmp_path: Path) -> None:
    config = _run_config(tmp_path, train={"preset": "demo", "steps": 4})  # demo: 10 epochs
    res = invoke("run", config, "--check")
    assert_clear_error(res, "small.yaml", "train.steps (4)", "train.epochs (10)")


def test_steps_with_epochs_this_call_is_a_pause_not_a_contradiction(ingested: Path) -> None:
    steps = [*TINY_TRAIN, "--set", "train.steps=5"]  # 2 periods: steps 1-2, 3-5
    res = invoke("train", ingested, *steps, "--epochs-this-call", "1")
    assert res.exit_code == 0, res.output
    assert "paused after validation period 1, step 2" in res.output
    res = invoke("train", ingested, *steps)
    assert res.exit_code == 0, res.output
    assert "epoch 2/2 (step 5/5)" in res.output and "epoch 1/2" not in res.output
    metrics = json.loads((ingested / "train" / "baseline" / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 5 and metrics["images_seen"] == 5 * 12
