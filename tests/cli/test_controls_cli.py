"""Bad control settings on the command line: budgets and the pool truth, refused before work.

``atlantis run --check`` and ``atlantis run`` both name the key and say what to change; the
run folder is not written.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli.test_oracle_cli import SCENARIO, error_line, invoke
from tests.train.conftest import make_dataset


def _config(tmp_path: Path, loop: dict, generate: dict | None = None) -> Path:
    root = make_dataset(tmp_path / "data", per_class=3)
    cfg = {"data": {"format": "imagefolder", "root": str(root), "scenario": SCENARIO},
           "caption": {"captioner": "metadata"}, "insight": {"llm": "rules"},
           "plan": {"budget": 20}, "generate": generate or {},
           "train": {"backbone": "timm:test_vit", "pretrained": False, "image_size": 32},
           "loop": {"arms": ["baseline", "naive", "targeted"], "seeds": 1, **loop}}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def problems(res) -> list[str]:
    return [x.strip() for x in res.output.splitlines() if x.strip().startswith("- ")]


def test_budgets_above_the_plan_are_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, {"budgets": [10, 40]})
    res = invoke("run", path, "--out", tmp_path / "r", "--check")
    error_line(res)
    assert any("loop.budgets: 40 exceeds the plan's budget 20" in p for p in problems(res))
    line = error_line(invoke("run", path, "--out", tmp_path / "r"))
    assert "raise plan.budget or drop the larger budgets" in line
    assert not (tmp_path / "r").exists()


def test_budgets_out_of_order_name_the_position(tmp_path: Path) -> None:
    line = error_line(invoke("run", _config(tmp_path, {"budgets": [10, 5]}), "--out",
                             tmp_path / "r", "--check"))  # fmt: skip
    assert "loop.budgets" in line and "5 at position 1 follows 10" in line


def test_a_truth_file_for_missing_pool_images_is_refused(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    (pool / "a").mkdir(parents=True)
    (pool / "a" / "x.png").write_bytes(b"png")
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"file": "a/x.png", "class": "c0"}\n{"file": "a/gone.png", "class": "c1"}\n')
    gen = {"source": "retrieve", "options": {"pool": str(pool)}}
    res = invoke("run", _config(tmp_path, {"pool_truth": str(truth)}, gen), "--out",
                 tmp_path / "r", "--check")  # fmt: skip
    error_line(res)
    found = [p for p in problems(res) if p.startswith("- loop.pool_truth")]
    assert found and "1 of its 2 rows name files that are not in the pool" in found[0]
    assert "a/gone.png" in found[0]
    no_pool = invoke("run", _config(tmp_path, {"pool_truth": str(truth)}), "--out",
                     tmp_path / "r", "--check")  # fmt: skip
    assert any("no pool" in p for p in problems(no_pool))
