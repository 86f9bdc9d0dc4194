"""Which model ``atlantis index`` / ``atlantis search`` mean: a folder, a run, or a name.

Users point at what they have: an exported model folder (``atlantis-model.json`` inside),
a run folder (its trained arms), a train stage folder or ``.pt`` file, or any embedder
spec (``efficientnet-lite0``, ``timm:...``). All of them become one embedder spec string,
which is what the index records and rebuilds the query model from.
"""

from __future__ import annotations

from pathlib import Path

from atlantis.errors import ConfigError
from atlantis.store.run import Run

MODEL_MANIFEST = "atlantis-model.json"
CHECKPOINT = "best.pt"


def resolve_model(model_or_run: str, *, arm: str | None = None, seed: int | None = None) -> str:
    """The embedder spec of ``model_or_run``; a run needs ``arm`` (and ``seed`` for a repeat)."""
    path = Path(model_or_run).expanduser()
    if path.is_dir() and (path / MODEL_MANIFEST).is_file():
        return f"model:{path.resolve()}"
    if path.is_dir() and _is_run(path):
        return f"checkpoint:{trained_folder(path, arm, seed)}"
    if (path.is_dir() and (path / CHECKPOINT).is_file()) or (
        path.is_file() and path.suffix == ".pt"
    ):
        return f"checkpoint:{path.resolve()}"
    if arm is not None or seed is not None:
        raise ConfigError(f"--arm/--seed need a run folder, but {model_or_run!r} is not one "
                          "(no train/ folder in it)")  # fmt: skip
    if path.is_dir():
        raise ConfigError(
            f"{model_or_run!r} is a folder, but neither an exported model ({MODEL_MANIFEST}), "
            f"a run (train/) nor a trained model ({CHECKPOINT}); give one of those or an "
            "embedder name (see `atlantis embedders`)"
        )
    return model_or_run


def _is_run(path: Path) -> bool:
    """A run folder: trained models, a saved config, or at least an ingest stage."""
    return (path / "train").is_dir() or Run(path).exists() or Run(path).manifest_path(
        "ingest").is_file()  # fmt: skip


def trained_arms(run: Path) -> list[str]:
    """Arms of ``run`` with a trained model (``train/<arm>/best.pt``)."""
    train = run / "train"
    if not train.is_dir():
        return []
    return sorted(p.name for p in train.iterdir() if (p / CHECKPOINT).is_file())


def trained_folder(run: Path, arm: str | None, seed: int | None) -> Path:
    """``RUN/train/<arm>[/seed-<S>]``, or a ConfigError naming the arms and the command."""
    arms = trained_arms(run)
    listed = ", ".join(arms) if arms else "none yet (atlantis train RUN --arm baseline)"
    if arm is None:
        raise ConfigError(f"{run} is a run folder: choose its trained model with --arm "
                          f"(trained arms: {listed})")  # fmt: skip
    folder = run / "train" / arm
    if not (folder / CHECKPOINT).is_file():
        raise ConfigError(f"arm {arm!r} of {run} has no trained model; train it with: "
                          f"atlantis train {run} --arm {arm} (trained arms: {listed})")  # fmt: skip
    if seed is not None:
        repeat = folder / f"seed-{seed}"
        if (repeat / CHECKPOINT).is_file():
            return repeat.resolve()
        own = _own_seed(Run(run), f"train/{arm}")
        if own != seed:
            seeds = sorted(p.name for p in folder.glob("seed-*") if (p / CHECKPOINT).is_file())
            have = ", ".join([f"seed {own} (train/{arm})", *seeds]) if own is not None else (
                ", ".join(seeds) or "none")  # fmt: skip
            raise ConfigError(f"arm {arm!r} of {run} has no model trained with seed {seed} "
                              f"(it has: {have}); repeated seeds are trained by: atlantis run "
                              f"CONFIG --out {run}")  # fmt: skip
    return folder.resolve()


def _own_seed(run: Run, stage: str) -> int | None:
    """The seed ``train/<arm>`` itself was trained with, from its manifest's config."""
    try:
        m = run.read_manifest(stage)
    except Exception:  # an unreadable manifest only means we cannot tell
        return None
    seed = (m.config.get("seed") if m is not None else None) if m else None
    if seed is None and m is not None:
        seed = (m.config.get("train") or {}).get("seed")
    return int(seed) if seed is not None else None
