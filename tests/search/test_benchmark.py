"""benchmarks/search.py runs end to end on a small gallery and prints every row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_search_benchmark_small_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "search.py"), "--n", "3000", "--queries", "20",
         "--batch", "100", "--threads", "1", "--page-images", "12", "--page-size", "32",
         "--page-queries", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("flat", "hnsw", "ivf", "poincare"):
        assert row in proc.stdout
    assert "recall@10" in proc.stdout and "exact" in proc.stdout
    assert "POST /api/search (page)" in proc.stdout and "page overhead" in proc.stdout
