"""The offline demo end to end, on a small slice of the real emoji data (fetched by setup)."""

import json
import shutil

from atlantis.data.emoji import DONE_MARKER, fetch_emoji
from atlantis.demo import run_demo
from atlantis.store.run import Run


def _slice(src, dest, n_classes=8):
    rows = [json.loads(line) for line in (src / "manifest.jsonl").read_text().splitlines()]
    keep = list(dict.fromkeys(r["label"] for r in rows))[:n_classes]
    rows = [r for r in rows if r["label"] in keep]
    for r in rows:
        (dest / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r["path"], dest / r["path"])
    (dest / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = [json.loads(line) for line in (src / "pool.jsonl").read_text().splitlines()][:24]
    for r in pool:
        (dest / "images" / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "images" / r["file"], dest / "images" / r["file"])
    (dest / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (dest / DONE_MARKER).write_text("slice\n")
    return len(rows)


def test_demo_runs_end_to_end_on_real_emoji(tmp_path):
    full = fetch_emoji()  # already there after scripts/setup.sh; fetched from npm otherwise
    n = _slice(full, tmp_path / "emoji")
    results = run_demo(
        tmp_path / "run", root=tmp_path / "emoji", image_size=64, budget=20, progress=False
    )
    assert set(results) == {"val", "test"}
    for res in results.values():
        assert 0.0 <= res["R@1"] <= res["R@2"] <= res["R@4"] <= res["R@8"] <= 1.0
    # Real features on real images: far above the chance level of ~1/4 for 4 test classes.
    assert results["test"]["R@1"] > 0.5
    run = Run(tmp_path / "run")
    assert run.require("ingest").counts["images"] == n
    ins = json.loads((run.stage_dir("insight") / "insight.json").read_text())
    assert {d["name"] for d in ins["domains"]} == {"google", "twitter"}
    assert ins["metadata"]["is_language_model"] is False  # the rules engine says what it is
    assert (run.stage_dir("insight") / "report.html").stat().st_size > 1000
    # Both arms planned at the same budget and sourced by retrieval from the pool.
    for arm in ("targeted", "naive"):
        assert run.require(f"plan/{arm}").counts["items"] == 20
        made = run.require(f"generate/{arm}").counts
        assert made["images"] + made["failed"] == 20 and made["images"] > 0
    stamp = run.require("embed/efficientnet-lite0").finished_at
    run_demo(tmp_path / "run", root=tmp_path / "emoji", image_size=64, budget=20, progress=False)
    assert run.require("embed/efficientnet-lite0").finished_at == stamp  # reused, not redone
