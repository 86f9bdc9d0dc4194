"""The offline demo end to end, on a small slice of the real emoji data (fetched by setup)."""

import json

from PIL import Image

from atlantis.data.emoji import fetch_emoji
from atlantis.demo import DEMO_KEEP, n_cut_classes, run_demo
from atlantis.report.schema import load_report_json
from atlantis.store.run import Run
from tests.pipeline.conftest import make_slice


def test_demo_runs_the_whole_loop_on_real_emoji(tmp_path):
    root = make_slice(fetch_emoji(), tmp_path / "emoji")
    result = run_demo(tmp_path / "run", root=root, image_size=64, budget=12, seeds=1,
                      progress=False)  # fmt: skip
    run = Run(tmp_path / "run")
    # the class-imbalance scenario: half the classes (seeded) cut to 2 training images
    scenario = json.loads((run.stage_dir("ingest") / "scenario.json").read_text())
    assert scenario["kind"] == "class_imbalance" and scenario["keep"] == DEMO_KEEP
    assert len(scenario["classes"]) == n_cut_classes(root) == 4
    ins = json.loads((run.stage_dir("insight") / "insight.json").read_text())
    assert ins["metadata"]["is_language_model"] is False  # the rules engine says what it is
    # the insight sees the gap the scenario made: every cut class is flagged
    assert set(scenario["classes"]) <= set(ins["under_represented_classes"])
    data = load_report_json(result.report_json)
    assert [a.name for a in data.arms] == ["untrained", "baseline", "naive", "targeted", "oracle"]
    # every control: the oracle's headroom, equal steps, the budget curve, fidelity by truth
    assert data.headroom is not None and data.arm("oracle").synthetic_images.restored > 0
    steps = {s.optimizer_steps for a in data.arms[1:] for s in a.seeds}
    assert len(steps) == 1 and None not in steps
    assert data.budget_curve is not None and [e.budget for e in data.budget_curve.eta] == [6, 12]
    assert {f.basis for f in data.fidelity.values()} == {"truth"}
    assert set(data.fidelity) == {"naive", "targeted"}
    for arm in data.arms:
        r = arm.summary
        assert 0 <= r["R@1"].mean <= r["R@2"].mean <= r["R@4"].mean <= r["R@8"].mean <= 1
    # real features on real images: far above chance (1/8 classes)
    assert data.arm("baseline").summary["R@1"].mean > 0.4
    assert data.adversarial is not None and data.adversarial.rows
    html = result.report_html.read_text()
    assert "<html" in html.lower() and "adversarial" in html.lower()
    # it ends where a user starts: the targeted model exported, the test split indexed
    from atlantis import load_model
    from atlantis.demo import INDEX_DIR, MODEL_DIR
    from atlantis.search.index import SearchIndex

    model = load_model(run.root / MODEL_DIR)
    assert model.config["provenance"]["arm"] == "targeted"
    index = SearchIndex.load(run.root / INDEX_DIR)
    assert index.meta.embedder_key == f"model v1 hash={model.model_hash}"
    first = index.items[0]
    (hits,) = index.search_images([Image.open(first.path)], k=3)
    assert hits[0].id == first.id and hits[0].distance < 1e-4
    stamp = run.require("train/baseline").finished_at
    run_demo(tmp_path / "run", root=root, image_size=64, budget=12, seeds=1, progress=False)
    assert run.require("train/baseline").finished_at == stamp  # reused, not redone
