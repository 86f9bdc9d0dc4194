"""Benchmark exact Recall@K at SOP scale: atlantis vs pytorch-metric-learning vs faiss-flat.

Run:  .venv/bin/python benchmarks/recall_at_k.py [--quick] [--threads T] [--methods atlantis,faiss]

Data: synthetic, seeded, SOP-shaped (60,502 x 128 float32, 11,316 classes of 2..12 images),
L2-normalised class centres plus Gaussian noise, rows shuffled. K = 1, 10, 100, 1000.

Methods (all exclude the query itself by index, all with the same thread count):
  atlantis  evaluate_retrieval(distance="cosine"), the default method="count": R@K + MAP@R
            from the ranks of each query's positives, counted in one pass over a symmetric
            block grid (half the GEMM work; no top-K selection).
  atlantis-topk
            evaluate_retrieval(..., method="topk"): the reference, a top-K scan of the same
            blocks (GEMM, bounded top-k selection, streamed metrics).
  pml       AccuracyCalculator(k="max_bin_count", ref_includes_query=True): R@1 is its
            precision_at_1 and MAP@R its mean_average_precision_at_r; no R@K for K > 1.
  faiss     IndexFlatIP.search(k=1001) on all queries at once, self dropped by index, then
            R@K (post-processing in row chunks so it adds little on top of the search).

Memory: each method runs in a fresh subprocess that first imports every library and loads
the data from .npy, then records its resident set size (VmRSS) as the baseline and resets
the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``). Peak extra memory is
the peak afterwards (``getrusage(RUSAGE_SELF).ru_maxrss``, which the reset also clears)
minus the baseline. Where the reset is not allowed, the peak includes import/load peaks and
is only an upper bound (the table says so).

Timing: ``wall s`` is the method call alone (index build, search, metric reduction);
``process s`` is the whole worker process (interpreter start, imports, data load, the call),
which is what a user waits for. The numba kernels are compiled (and cached) before the
timed runs. On a shared machine use ``--repeat N``: each method then runs N times,
interleaved, and the table shows the fastest run (the least disturbed one), the median,
and the largest peak memory. The last lines give atlantis / faiss for both timings and the
largest |R@K difference| between atlantis and its top-K reference (exact means 0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KS = (1, 10, 100, 1000)
METHODS = ("atlantis", "atlantis-topk", "pml", "faiss")


def make_data(
    n: int, classes: int, dim: int, seed: int, noise: float = 0.125
) -> tuple[np.ndarray, np.ndarray]:
    """SOP-like clustered embeddings: class sizes 2..12 summing to ``n``, unit-norm rows.

    Unit class centres plus Gaussian noise of norm ~ ``noise * sqrt(128)`` whatever ``dim``;
    the default 0.125 gives SOP-like difficulty at full size (R@1 ~ 0.7, R@1000 ~ 1).
    """
    if not 2 * classes <= n <= 12 * classes:
        raise SystemExit(f"--n must be within [2, 12] x --classes, got {n} and {classes}")
    rng = np.random.default_rng(seed)
    extra_slots = rng.choice(classes * 10, n - 2 * classes, replace=False) // 10
    sizes = 2 + np.bincount(extra_slots, minlength=classes)
    labels = rng.permutation(np.repeat(np.arange(classes), sizes))
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = np.float32(noise * np.sqrt(128 / dim))
    x = centres[labels] + rng.standard_normal((n, dim), dtype=np.float32) * sigma
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int64)


def recall_from_neighbours(idx: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict:
    """R@K from a self-free [N, >= max K] neighbour table, reduced in row chunks."""
    hits = np.zeros(len(ks), dtype=np.int64)
    for s in range(0, len(idx), 4096):
        rel = labels[idx[s : s + 4096, : max(ks)]] == labels[s : s + 4096, None]
        first = np.where(rel.any(1), rel.argmax(1), max(ks))
        hits += [(first < k).sum() for k in ks]
    return {k: float(h) / len(idx) for k, h in zip(ks, hits, strict=True)}


def run_atlantis(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], budget: int) -> dict:
    from atlantis.evaluation import evaluate_retrieval

    m = evaluate_retrieval(x, labels, ks=ks, distance="cosine", memory_budget_bytes=budget)
    return {"recall": m.recall, "map_at_r": m.map_at_r}


def run_atlantis_topk(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], budget: int) -> dict:
    from atlantis.evaluation import evaluate_retrieval

    m = evaluate_retrieval(
        x, labels, ks=ks, distance="cosine", memory_budget_bytes=budget, method="topk"
    )
    return {"recall": m.recall, "map_at_r": m.map_at_r}


def run_pml(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], budget: int) -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count"
    )
    emb, lab = torch.from_numpy(x), torch.from_numpy(labels)
    acc = calc.get_accuracy(emb, lab, emb, lab, ref_includes_query=True)
    return {"recall": {1: acc["precision_at_1"]}, "map_at_r": acc["mean_average_precision_at_r"]}


def run_faiss(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], budget: int) -> dict:
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, idx = index.search(x, max(ks) + 1)
    is_self = idx == np.arange(len(x))[:, None]
    is_self[~is_self.any(1), -1] = True  # self not retrieved (ties): drop the last instead
    idx = idx[~is_self].reshape(len(x), max(ks))
    return {"recall": recall_from_neighbours(idx, labels, ks), "map_at_r": None}


def _rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(method: str, data_dir: Path, threads: int, ks: tuple[int, ...], budget: int) -> None:
    """Run one method in this (fresh) process and print a JSON line with time and memory."""
    import faiss
    import pytorch_metric_learning  # noqa: F401  (imported so every worker has the same baseline)
    import torch

    import atlantis.evaluation  # noqa: F401

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    x, labels = np.load(data_dir / "x.npy"), np.load(data_dir / "labels.npy")
    baseline = _rss_kib()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    fn = {"atlantis": run_atlantis, "atlantis-topk": run_atlantis_topk, "pml": run_pml,
          "faiss": run_faiss}[method]  # fmt: skip
    t0 = time.perf_counter()
    out = fn(x, labels, ks, budget)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out.update(wall_s=wall, extra_mib=(peak - baseline) / 1024, peak_reset=reset)
    print(json.dumps(out))


def run_worker(method: str, data_dir: str, a: argparse.Namespace) -> dict[str, Any]:
    """Run one method in a fresh interpreter (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--worker", method, "--data-dir", data_dir,
           "--threads", str(a.threads), "--budget-mib", str(a.budget_mib),
           "--n", str(a.n)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_s"] = process_s
    res["recall"] = {int(k): v for k, v in res["recall"].items()}
    return res


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=60_502)
    p.add_argument("--classes", type=int, default=11_316)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--budget-mib", type=int, default=256, help="atlantis memory_budget_bytes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.125, help="per-coordinate noise at dim 128")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--repeat", type=int, default=1, help="runs per method; report the fastest")
    p.add_argument("--quick", action="store_true", help="small smoke run (6,000 x 64)")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.n, a.classes, a.dim = 6_000, 1_100, 64
    ks = tuple(k for k in KS if k < a.n)
    budget = a.budget_mib << 20
    if a.worker:
        worker(a.worker, a.data_dir, a.threads, ks, budget)
        return

    x, labels = make_data(a.n, a.classes, a.dim, a.seed, a.noise)
    if any(m.startswith("atlantis") for m in a.methods.split(",")):
        from atlantis.evaluation import evaluate_retrieval

        evaluate_retrieval(x[:500], labels[:500], ks=(1,))  # compile + cache the numba kernels
    print(f"data: {a.n} x {a.dim} float32, {a.classes} classes, threads={a.threads}, K={ks}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        np.save(Path(tmp) / "labels.npy", labels)
        for _ in range(a.repeat):
            for method in a.methods.split(","):
                res = run_worker(method, tmp, a)
                best = results.setdefault(method, {**res, "walls": [], "processes": []})
                best["walls"].append(res["wall_s"])
                best["processes"].append(res["process_s"])
                best["extra_mib"] = max(best["extra_mib"], res["extra_mib"])
                if res["recall"] != best["recall"] or res["map_at_r"] != best["map_at_r"]:
                    raise SystemExit(f"{method}: results differ between runs")
    print_table(results, ks)


def print_table(results: dict[str, Any], ks: tuple[int, ...]) -> None:
    """One row per method; R@K compared exactly (==) with atlantis's values."""
    ref = results.get("atlantis", next(iter(results.values())))["recall"]
    head = f"{'method':<14}{'wall s':>8}{'median':>8}{'process s':>10}{'extra MiB':>10}"
    print(head + "".join(f"{'R@' + str(k):>10}" for k in ks) + f"{'MAP@R':>10}  R@K identical")
    for method, r in results.items():
        same = all(r["recall"][k] == ref[k] for k in r["recall"])
        cols = "".join(f"{fmt(r['recall'].get(k)):>10}" for k in ks)
        mem = f"{r['extra_mib']:.0f}" + ("" if r["peak_reset"] else "*")
        walls = f"{min(r['walls']):>8.2f}{float(np.median(r['walls'])):>8.2f}"
        walls += f"{min(r['processes']):>10.2f}"
        print(f"{method:<14}{walls}{mem:>10}{cols}{fmt(r['map_at_r']):>10}  {same}")
    if "atlantis" in results and "faiss" in results:
        at, fa = results["atlantis"], results["faiss"]
        print(f"atlantis / faiss-flat: {min(at['walls']) / min(fa['walls']):.3f} (call), "
              f"{min(at['processes']) / min(fa['processes']):.3f} (whole process)")  # fmt: skip
    if "atlantis" in results and "atlantis-topk" in results:
        a, b = results["atlantis"], results["atlantis-topk"]
        diff = max(abs(a["recall"][k] - b["recall"][k]) for k in ks)
        print(f"max |R@K atlantis - atlantis-topk| = {diff:.1e} (exact: 0); "
              f"|MAP@R diff| = {abs(a['map_at_r'] - b['map_at_r']):.1e}")  # fmt: skip
    if "atlantis" in results and "pml" in results:
        diff = abs(results["atlantis"]["map_at_r"] - results["pml"]["map_at_r"])
        print(f"|MAP@R atlantis - pml| = {diff:.2e}")
    if not all(r["peak_reset"] for r in results.values()):
        print("* peak-RSS reset not permitted: extra memory is an upper bound")


if __name__ == "__main__":
    main()
