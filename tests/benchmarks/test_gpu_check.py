"""benchmarks/gpu_check.py: the tiny run, the no-GPU skip, and the shipped configs' real sizes.

The real-size configs are built on the meta device (shapes only, no memory), so their
parameter counts prove they are the published architectures without allocating 12 B weights.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
CONFIGS = ROOT / "benchmarks" / "configs"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def _config(name: str, folder: Path = CONFIGS) -> dict[str, Any]:
    data = json.loads((folder / name).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def test_tiny_run_gives_a_number_for_every_check(tmp_path: Path) -> None:
    # A subprocess: the script's logging, sys.path and env changes stay out of this one.
    out = tmp_path / "rows.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["check"] for r in rows] == ["sdxl", "flux", "train", "recall"]
    for row in rows:
        assert row["status"] == "ok", (row, proc.stderr[-3000:])
        assert isinstance(row["value"], float) and math.isfinite(row["value"]), row
        assert row["value"] > 0 and row["unit"], row
        assert row["metrics"] and all(math.isfinite(v) for v in row["metrics"].values()), row
        assert row["check"] in proc.stdout
    assert rows[0]["metrics"]["made"] + rows[0]["metrics"]["failed"] == 2  # batch 2, 1 batch
    assert rows[3]["metrics"]["same_as_cpu"] == 1.0


def test_without_cuda_it_prints_the_skip_line_and_returns_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    module = _module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main(["--json", str(tmp_path / "rows.json")]) == 0
    assert capsys.readouterr().out.strip() == module.SKIP_LINE
    assert "no CUDA GPU" in module.SKIP_LINE
    assert json.loads((tmp_path / "rows.json").read_text())["rows"] == []


def test_only_rejects_an_unknown_check_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        _module().main(["--tiny", "--only", "sdxl,nope"])
    assert exc.value.code == 2
    assert "valid: sdxl, flux, train, recall" in capsys.readouterr().err


def test_every_tiny_config_mirrors_a_full_size_one() -> None:
    full = sorted(p.name for p in CONFIGS.glob("*.json"))
    assert full == sorted(p.name for p in (CONFIGS / "tiny").glob("*.json"))
    for name in full:
        big, tiny = (json.loads(p.read_text()) for p in (CONFIGS / name, CONFIGS / "tiny" / name))
        assert big.keys() == tiny.keys() and big["_class_name"] == tiny["_class_name"], name


def _diffusers(cls_name: str, file: str) -> torch.nn.Module:
    import diffusers

    return getattr(diffusers, cls_name).from_config(_config(file))


def _clip(cls_name: str, file: str) -> torch.nn.Module:
    import transformers

    return getattr(transformers, cls_name)(transformers.CLIPTextConfig(**_config(file)))


def _vit(file: str) -> torch.nn.Module:
    from atlantis.train.model import load_backbone

    cfg = _config(file)
    return load_backbone(cfg["backbone"], pretrained=cfg["pretrained"],
                         image_size=cfg["image_size"], options=cfg["backbone_options"]).module  # fmt: skip


@pytest.mark.parametrize(
    ("file", "build", "cls_name", "params"),
    [
        ("sdxl_turbo_unet.json", _diffusers, "UNet2DConditionModel", 2.567e9),
        ("flux_schnell_transformer.json", _diffusers, "FluxTransformer2DModel", 11.9e9),
        ("sdxl_vae.json", _diffusers, "AutoencoderKL", 83.65e6),
        ("clip_vit_l14_text.json", _clip, "CLIPTextModel", 123.1e6),
        ("openclip_bigg_text.json", _clip, "CLIPTextModelWithProjection", 694.7e6),
        ("dino_vits16.json", None, "VisionTransformer", 21.7e6),
    ],
)
def test_shipped_config_builds_the_real_size_on_meta(file, build, cls_name, params) -> None:  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        model = _vit(file) if build is None else build(cls_name, file)
    assert type(model).__name__ == cls_name
    assert all(p.device.type == "meta" for p in model.parameters())
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / params - 1) < 0.05, f"{file}: {n:,} parameters, expected ~{params:,.0f}"
