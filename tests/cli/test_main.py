"""The CLI contract other work relies on, end to end on tiny real image trees."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atlantis.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def image_tree(tmp_path):
    """6 classes x 4 images; each class a distinct colour so retrieval is meaningful."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for c in range(6):
        base = rng.integers(0, 255, 3)
        for i in range(4):
            px = np.clip(base + rng.integers(-20, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            (root / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(px).save(root / f"class{c}" / f"{i}.png")
    return root


def test_ingest_info_status(image_tree, tmp_path):
    run = tmp_path / "run"
    res = invoke(
        "ingest",
        "--format",
        "imagefolder",
        "--root",
        image_tree,
        "--split",
        "zsl",
        "--out",
        run,
        "--val-fraction",
        "0.0",
    )
    assert res.exit_code == 0, res.output
    info = json.loads(invoke("info", run, "--json").stdout)
    assert info["splits"]["train"] == {"images": 12, "classes": 3}
    assert info["splits"]["test"] == {"images": 12, "classes": 3}
    assert info["splits"]["val"] == {"images": 0, "classes": 0}
    assert (run / "config.yaml").exists()
    status = invoke("status", run, "--json")
    assert [s["stage"] for s in json.loads(status.stdout)] == ["ingest"]


def test_evaluate_zero_training_baseline_then_skips(image_tree, tmp_path):
    run = tmp_path / "run"
    invoke(
        "ingest", "--format", "imagefolder", "--root", image_tree, "--split", "fsl", "--out", run
    )
    res = invoke(
        "evaluate", run, "--embedder", "efficientnet-lite0", "--image-size", "32", "--json"
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert set(metrics) >= {"R@1", "R@2", "R@4", "R@8", "MAP@R"}
    assert all(0.0 <= metrics[f"R@{k}"] <= 1.0 for k in (1, 2, 4, 8))
    assert metrics["R@1"] > 1 / 6  # distinct colours: far above chance
    stages = {s["stage"]: s for s in json.loads(invoke("status", run, "--json").stdout)}
    assert set(stages) == {"ingest", "embed/efficientnet-lite0", "evaluate/efficientnet-lite0"}
    before = stages["embed/efficientnet-lite0"]["finished_at"]
    again = invoke("evaluate", run, "--json")  # the run remembers its embedder and size
    assert json.loads(again.stdout) == metrics
    stages = {s["stage"]: s for s in json.loads(invoke("status", run, "--json").stdout)}
    assert stages["embed/efficientnet-lite0"]["finished_at"] == before  # skipped, not redone


def test_failing_reingest_keeps_previous_records(image_tree, tmp_path):
    run = tmp_path / "run"
    invoke("ingest", "--format", "imagefolder", "--root", image_tree, "--out", run)
    records = (run / "ingest" / "records.jsonl").read_text()
    (image_tree / "class0" / "broken.png").write_text("not an image")
    res = invoke("ingest", "--format", "imagefolder", "--root", image_tree, "--out", run)
    assert res.exit_code == 2
    assert "broken.png" in res.output
    assert (run / "ingest" / "records.jsonl").read_text() == records
    res = invoke(
        "ingest", "--format", "imagefolder", "--root", image_tree, "--out", run, "--skip-bad"
    )
    assert res.exit_code == 0, res.output
    assert "1 item(s) skipped" in res.output


def test_stage_before_its_inputs_says_which_command(tmp_path):
    res = invoke("evaluate", tmp_path / "nothing")
    assert res.exit_code == 2
    assert "atlantis ingest" in res.output


def test_unknown_config_key_and_embedder(image_tree, tmp_path):
    run = tmp_path / "run"
    res = invoke(
        "ingest",
        "--format",
        "imagefolder",
        "--root",
        image_tree,
        "--out",
        run,
        "--set",
        "data.sedd=1",
    )
    assert res.exit_code == 2 and "data.seed" in res.output
    res = invoke("ingest", "--format", "nope", "--root", image_tree, "--out", run)
    assert res.exit_code == 2 and "imagefolder" in res.output
    invoke("ingest", "--format", "imagefolder", "--root", image_tree, "--out", run)
    res = invoke("embed", run, "--embedder", "bogus:thing")
    assert res.exit_code == 2 and "timm" in res.output


def test_recall_command(tmp_path):
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.95, 0.05]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1])
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "l.npy", y)
    res = invoke(
        "recall",
        "--embeddings",
        tmp_path / "e.npy",
        "--labels",
        tmp_path / "l.npy",
        "--k",
        "1,2",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # Hits at K=1: queries 2 and 3. Queries 0 and 1 find 4 (label 1) first, then each other:
    # hits at K=2. Query 4 (label 1) sits among label 0 (nearest 0, then 1): a miss at K=2 too.
    assert out == {"R@1": pytest.approx(2 / 5), "R@2": pytest.approx(4 / 5)}
    res = invoke("recall", "--embeddings", tmp_path / "missing.npy", "--labels", tmp_path / "l.npy")
    assert res.exit_code == 2 and "missing.npy" in res.output
