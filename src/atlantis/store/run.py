"""A run folder: resolved config, one sub-folder per stage, each with a ``manifest.json``.

The manifest is what makes stages composable and restartable. It records the stage's
config hash and the output hashes of the stages it read; when both are unchanged and its
own outputs are still on disk, the stage is *up to date* and is skipped. A stage that was
killed has a ``running`` manifest (or none) and simply runs again: long stages keep their
finished work in resumable caches inside the stage folder, so a re-run only does what is
missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from atlantis import redact
from atlantis.errors import StageError, StagePaused
from atlantis.store.atomic import file_sha256

MANIFEST_SCHEMA_VERSION = 1

#: Stages in pipeline order, with the command that produces each (for "run X first" errors).
STAGE_COMMANDS: dict[str, str] = {
    "ingest": "atlantis ingest --format FORMAT --root DIR --split zsl --out RUN",
    "caption": "atlantis caption RUN --captioner metadata",
    "embed": "atlantis embed RUN",
    "insight": "atlantis insight RUN --llm rules",
    "plan": "atlantis plan RUN --budget N --planner targeted",
    "generate": "atlantis generate RUN --arm targeted",
    "filter": "atlantis filter RUN --arm targeted --delta 1.5",
    "train": "atlantis train RUN --arm baseline",
    "evaluate": "atlantis evaluate RUN",
    "testset": "atlantis run CONFIG --out RUN with loop.synthetic_test_per_class > 0",
    "attack": "atlantis attack RUN --arm baseline --arm targeted",
}


#: Stages named ``<kind>/<arm>``: the command that makes one must say which arm.
ARM_STAGES = frozenset({"plan", "generate", "filter", "train"})
#: The arm of the synthetic test set X_s, made by the loop only (``testset`` above).
TESTSET_ARM = "testset"


def stage_command(name: str) -> str:
    """The command that makes stage ``name``, for the arm (and delta) the name holds.

    ``STAGE_COMMANDS`` hold one example per kind of stage; a missing ``generate/naive``
    must be answered with ``atlantis generate RUN --arm naive``, not the targeted example,
    or the user runs the wrong arm and meets the same error again.
    """
    kind, _, rest = name.partition("/")
    parts = rest.split("/") if rest else []
    cmd = STAGE_COMMANDS.get(kind, f"atlantis {kind} RUN")
    if kind in ARM_STAGES and parts:
        arm, tags = parts[0], parts[1:]
        if arm == TESTSET_ARM:
            cmd = STAGE_COMMANDS["testset"]
        elif kind == "plan":
            picks = f"--planner {arm}" if arm in ("targeted", "naive") else (
                f"--planner targeted --arm {arm}")  # fmt: skip
            cmd = f"atlantis plan RUN --budget N {picks}"
        elif kind == "train" and any(t.startswith("seed-") for t in tags):
            cmd = "atlantis run CONFIG --out RUN (repeated seeds are trained by the loop)"
        else:
            cmd = f"atlantis {kind} RUN --arm {arm}"
            delta = next((t.removeprefix("delta-") for t in tags if t.startswith("delta-")), None)
            if delta is not None:
                cmd += f" --delta {delta}"
    return cmd


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def config_hash(
    config: BaseModel | Mapping[str, Any] | None, exclude: set[str] | None = None
) -> str:
    """Stable hash of a config: canonical JSON, minus keys that do not change results.

    Secret values are not part of it (the config is redacted first; ``atlantis.redact``
    says why): a rotated API key or header value does not re-run a stage.
    """
    data: Any = redact.redact_config(
        config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
    )
    for key in exclude or ():
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StageManifest(BaseModel):
    """What a stage did: enough to decide whether it must run again, and to audit it."""

    stage: str
    schema_version: int = MANIFEST_SCHEMA_VERSION
    # paused: stopped on purpose (``StagePaused``), resumable; failed: stopped by an error
    status: Literal["running", "done", "paused", "failed"]
    config_hash: str
    config: dict[str, Any] = Field(default_factory=dict)
    input_hashes: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)  # path relative to stage dir -> sha256
    output_hash: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    started_at: str
    finished_at: str | None = None
    error: str | None = None


class StageContext:
    """Handed to a stage's body: where to write, and what to record in the manifest."""

    def __init__(
        self,
        run: Run,
        name: str,
        cfg_hash: str,
        cfg: dict[str, Any],
        inputs: dict[str, str],
        previous: StageManifest | None,
        up_to_date: bool,
    ) -> None:
        self.run = run
        self.name = name
        self.dir = run.stage_dir(name)
        self.config_hash = cfg_hash
        self.config = cfg
        self.input_hashes = inputs
        self.previous = previous
        self.up_to_date = up_to_date
        self.counts: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self.info: dict[str, Any] = {}
        self.outputs: list[Path] = []
        self._t0 = time.perf_counter()
        self._started = _now()

    @contextmanager
    def timer(self, key: str) -> Iterator[None]:
        """Accumulate wall time under ``timings[key]`` (the cost model reads these)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t

    def add_output(self, path: Path) -> Path:
        self.outputs.append(Path(path))
        return Path(path)

    def _manifest(self, status: str, error: str | None = None) -> StageManifest:
        outputs = {
            str(p.relative_to(self.dir) if p.is_relative_to(self.dir) else p): file_sha256(p)
            for p in self.outputs
        }
        out_hash = hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()[:16]
        timings = dict(self.timings)
        timings["total_s"] = time.perf_counter() - self._t0
        return StageManifest(
            stage=self.name, status=status, config_hash=self.config_hash, config=self.config,
            input_hashes=self.input_hashes, outputs=outputs,
            output_hash=out_hash if status == "done" else None, counts=self.counts,
            timings=timings, info=self.info, started_at=self._started, finished_at=_now(),
            error=error,
        )  # fmt: skip


class Run:
    """A run folder. Stages read and write only through it."""

    CONFIG_FILE = "config.yaml"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- layout -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / self.CONFIG_FILE

    def stage_dir(self, name: str) -> Path:
        return self.root / name

    def manifest_path(self, name: str) -> Path:
        return self.stage_dir(name) / "manifest.json"

    def exists(self) -> bool:
        return self.config_path.exists()

    # -- manifests --------------------------------------------------------------------------
    def read_manifest(self, name: str) -> StageManifest | None:
        path = self.manifest_path(name)
        if not path.exists():
            return None
        try:
            return StageManifest.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as e:
            raise StageError(
                f"{path}: unreadable stage manifest ({e.error_count()} problems); delete the "
                f"folder {path.parent} to run the '{name}' stage again"
            ) from None

    def stages(self) -> list[StageManifest]:
        """Manifests of every stage present, pipeline order first, then by name."""
        if not self.root.exists():
            return []
        order = list(STAGE_COMMANDS)
        names = sorted(
            (p.parent.relative_to(self.root).as_posix() for p in self.root.rglob("manifest.json")),
            key=lambda n: (
                order.index(n.split("/")[0]) if n.split("/")[0] in order else len(order),
                n,
            ),
        )
        return [m for n in names if (m := self.read_manifest(n)) is not None]

    def require(self, name: str) -> StageManifest:
        """The manifest of a finished stage, or a ``StageError`` saying which command makes it."""
        m = self.read_manifest(name)
        if m is None or m.status != "done":
            state = "has not run" if m is None else f"is '{m.status}'"
            verb = "Resume it" if m is not None and m.status == "paused" else "Make them"
            raise StageError(
                f"run {self.root}: stage '{name}' {state}; its outputs are needed here. "
                f"{verb} with: {stage_command(name)}"
            )
        return m

    def output_hash(self, name: str) -> str:
        m = self.require(name)
        assert m.output_hash is not None
        return m.output_hash

    # -- running a stage ---------------------------------------------------------------------
    def _outputs_intact(self, m: StageManifest, name: str) -> bool:
        return all((self.stage_dir(name) / rel).exists() for rel in m.outputs)

    @contextmanager
    def stage(
        self,
        name: str,
        config: BaseModel | Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        *,
        exclude: set[str] | None = None,
        force: bool = False,
    ) -> Iterator[StageContext]:
        """Run a stage body: skip-detection, a ``running`` manifest, then ``done``, ``paused``
        (the body raised ``StagePaused``) or ``failed``.

        The body checks ``ctx.up_to_date`` and returns early when it is True. ``exclude``
        names config keys (device, batch size...) that do not change the results.
        """
        cfg = (
            config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
        )
        redact.register(redact.config_secrets(cfg))  # for the manifests and what the body writes
        cfg = redact.redact_config(cfg)  # the manifest records the config without its secrets
        h = config_hash(cfg, exclude)
        inputs = dict(inputs or {})
        prev = self.read_manifest(name)
        fresh = (not force and prev is not None and prev.status == "done"
                 and prev.config_hash == h and prev.input_hashes == inputs
                 and self._outputs_intact(prev, name))  # fmt: skip
        ctx = StageContext(self, name, h, cfg, inputs, prev, fresh)
        if fresh:
            yield ctx
            return
        ctx.dir.mkdir(parents=True, exist_ok=True)
        self._write_manifest(ctx._manifest("running"))
        try:
            yield ctx
        except StagePaused as e:  # on purpose: the body kept its work, a re-run resumes it
            ctx.info["paused"] = str(e)
            self._write_manifest(ctx._manifest("paused"))
            raise
        except BaseException as e:
            self._write_manifest(ctx._manifest("failed", error=f"{type(e).__name__}: {e}"))
            raise
        self._write_manifest(ctx._manifest("done"))

    def _write_manifest(self, m: StageManifest) -> None:
        redact.write_redacted(self.manifest_path(m.stage), m.model_dump_json(indent=2) + "\n")
