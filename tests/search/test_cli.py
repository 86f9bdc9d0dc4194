"""``atlantis index`` / ``atlantis search`` end to end through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.errors import ConfigError
from atlantis.search.model_spec import resolve_model

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def text(res) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def test_index_then_search_table_json_and_html(spies, gallery_dir: Path, tmp_path: Path) -> None:
    (gallery_dir / "class3" / "broken.jpg").write_text("not a jpeg")
    idx = tmp_path / "idx"
    res = invoke("index", "spy-cosine", "--images", gallery_dir, "--out", idx)
    assert res.exit_code == 0, res.output
    assert "20 images, flat" in text(res) and "20 embedded" in text(res)
    assert "1 unreadable file(s) skipped" in text(res) and "broken.jpg" in text(res)

    query = gallery_dir / "class2" / "3.png"
    res = invoke("search", idx, query, "--k", "3")
    assert res.exit_code == 0, res.output
    assert str(query) in res.output.replace("\n", "") and "(label class2)" in text(res)

    res = invoke("search", idx, query, gallery_dir / "class0" / "1.png", "--k", "4", "--json")
    out = json.loads(res.output)
    first = out["results"][0]
    assert first["label"] == "class2" and first["hits"][0]["path"] == str(query)
    assert first["hits"][0]["distance"] == pytest.approx(0, abs=1e-3)
    assert first["hits"][0]["same_label"] is True and len(first["hits"]) == 4
    assert out["results"][1]["hits"][0]["id"] == "class0/1.png"

    page = tmp_path / "sheet.html"
    res = invoke("search", idx, query, "--k", "5", "--html", page)
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert html.count("data:image/jpeg;base64,") == 6  # the query and its 5 hits
    assert "class2" in html and 'class="match"' in html and "d=0.0000" in html


def test_k_larger_than_the_gallery_is_clamped_with_a_note(spies, gallery_dir: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    invoke("index", "spy-cosine", "--images", gallery_dir, "--out", tmp_path / "idx")
    res = invoke("search", tmp_path / "idx", gallery_dir / "class0" / "0.png", "--k", "50")
    assert res.exit_code == 0 and "more than the gallery's 20 images" in text(res)
    res = invoke("search", tmp_path / "idx", gallery_dir / "class0" / "0.png", "--k", "50",
                 "--json")  # fmt: skip
    out = json.loads(res.output)
    assert out["k"] == 20 and len(out["results"][0]["hits"]) == 20 and out["note"]


def test_bad_queries_and_foreign_models_are_refused(spies, gallery_dir: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    idx = tmp_path / "idx"
    invoke("index", "spy-cosine", "--images", gallery_dir, "--out", idx)
    notes = tmp_path / "notes.png"
    notes.write_text("hello")
    res = invoke("search", idx, notes)
    assert res.exit_code == 2 and "notes.png" in text(res)
    assert "not a readable query image" in text(res)
    res = invoke("search", idx, tmp_path / "nope.jpg")
    assert res.exit_code == 2 and "nope.jpg: query image not found" in text(res)
    res = invoke("search", idx, gallery_dir / "class0" / "0.png", "--model", "spy-other")
    assert res.exit_code == 2 and "spy-cosine v1" in text(res) and "spy-cosine v2" in text(res)
    res = invoke("search", tmp_path / "empty", gallery_dir / "class0" / "0.png")
    assert res.exit_code == 2 and "not a search index" in text(res)


def test_index_needs_exactly_one_gallery(spies, gallery_dir: Path, tmp_path: Path) -> None:
    res = invoke("index", "spy-cosine", "--out", tmp_path / "idx")
    assert res.exit_code == 2 and "--images FOLDER or --run RUN" in text(res)
    res = invoke("index", "spy-cosine", "--images", gallery_dir, "--out", tmp_path / "i",
                 "--kind", "lsh")  # fmt: skip
    assert res.exit_code == 2 and "valid: auto, flat, ivf, hnsw" in text(res)


def test_model_argument_resolution(tmp_path: Path) -> None:
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "atlantis-model.json").write_text("{}")
    assert resolve_model(str(exported)) == f"model:{exported.resolve()}"
    assert resolve_model("efficientnet-lite0") == "efficientnet-lite0"
    run = tmp_path / "run"
    (run / "train" / "baseline").mkdir(parents=True)
    (run / "train" / "baseline" / "best.pt").write_bytes(b"x")
    (run / "train" / "targeted").mkdir()  # started, never finished
    with pytest.raises(ConfigError, match=r"--arm \(trained arms: baseline\)"):
        resolve_model(str(run))
    with pytest.raises(ConfigError, match=f"atlantis train {run} --arm targeted"):
        resolve_model(str(run), arm="targeted")
    folder = (run / "train" / "baseline").resolve()
    assert resolve_model(str(run), arm="baseline") == f"checkpoint:{folder}"
    assert resolve_model(str(run / "train" / "baseline")) == f"checkpoint:{folder}"
    (run / "train" / "baseline" / "seed-3").mkdir()
    (run / "train" / "baseline" / "seed-3" / "best.pt").write_bytes(b"x")
    assert resolve_model(str(run), arm="baseline", seed=3) == f"checkpoint:{folder}/seed-3"
    with pytest.raises(ConfigError, match=r"no model trained with seed 9.*seed-3"):
        resolve_model(str(run), arm="baseline", seed=9)
    with pytest.raises(ConfigError, match="neither an exported model"):
        resolve_model(str(tmp_path))


def test_offline_efficientnet_index_and_search(gallery_dir: Path, tmp_path: Path) -> None:
    """The real offline backbone at 32 px: the image-size option is recorded and reused."""
    idx = tmp_path / "idx"
    res = invoke("index", "efficientnet-lite0", "--images", gallery_dir, "--out", idx,
                 "--image-size", "32", "--device", "cpu", "--batch-size", "10")  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((idx / "index.json").read_text())
    assert meta["embedder_options"] == {"image_size": 32} and meta["dim"] == 1280
    res = invoke("search", idx, gallery_dir / "class1" / "2.png", "--k", "2", "--json",
                 "--device", "cpu")  # fmt: skip
    hit = json.loads(res.output)["results"][0]["hits"][0]
    assert hit["id"] == "class1/2.png" and hit["distance"] == pytest.approx(0, abs=1e-4)
