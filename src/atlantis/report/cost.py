"""The cost model of supplement J: how long a run takes, and which term dominates.

``T_total(N_o, N_s) = gamma + (k_f + k_i) N_o + k_a + (k_d + k_s + k_o) N_s``: a set-up
cost, per-original costs (captioning/feature extraction, insight), the plan's fixed cost,
and per-synthetic-image costs (a description, the image itself, the ORDC filter). The
paper's A100 figures (``PAPER_A100``) give 72,165 s for 1,000 originals + 2,000 synthetic
images; ``coefficients_from_run`` measures the same coefficients on a run folder from its
stage manifests, so a user can price a larger run on their own hardware before starting it.
Every coefficient carries a ``source`` line: a number nobody can trace is not worth showing.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from atlantis.errors import ConfigError
from atlantis.store.run import Run, StageManifest

#: Coefficient -> (what it prices, the count it multiplies).
TERMS: dict[str, tuple[str, str]] = {
    "gamma": ("set-up: loading models", "once"),
    "k_f": ("captions + features, per original", "originals"),
    "k_i": ("data insight, per original", "originals"),
    "k_a": ("plan objective + reference, once", "once"),
    "k_d": ("description, per synthetic image", "synthetic"),
    "k_s": ("generation, per synthetic image", "synthetic"),
    "k_o": ("ORDC filter, per synthetic image", "synthetic"),
}
PAPER = "paper A100 (supplement J)"
ARM_STAGES = ("plan", "generate", "filter", "train")  # stage folders that are per arm


class CostCoefficients(BaseModel):
    """Seconds per unit of each term, and where each number came from."""

    label: str = PAPER
    gamma: float = Field(60.0, ge=0)
    k_f: float = Field(2.0, ge=0)
    k_i: float = Field(0.1, ge=0)
    k_a: float = Field(5.0, ge=0)
    k_d: float = Field(3.0, ge=0)
    k_s: float = Field(30.0, ge=0)
    k_o: float = Field(2.0, ge=0)
    source: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(TERMS, PAPER))


#: The paper's A100 figures with SDXL base in fp32 (30 s per image).
PAPER_A100 = CostCoefficients(label=f"{PAPER}, SDXL fp32")
#: The same with SDXL Turbo (8 s per image).
PAPER_A100_TURBO = CostCoefficients(
    label=f"{PAPER}, SDXL Turbo",
    k_s=8.0,
    source={**dict.fromkeys(TERMS, PAPER), "k_s": f"{PAPER}: SDXL Turbo"},
)


class CostTerm(BaseModel):
    """One line of the breakdown: coefficient x count = seconds, and its share of the total."""

    key: str
    what: str
    coefficient: float
    count: int
    seconds: float
    share: float
    source: str


class CostEstimate(BaseModel):
    """``T_total`` for given counts, term by term (the report shows the breakdown)."""

    label: str
    n_originals: int
    n_synthetic: int
    terms: list[CostTerm]
    total_s: float
    total_hours: float

    @property
    def dominant(self) -> CostTerm:
        return max(self.terms, key=lambda t: t.seconds)


def estimate(coeffs: CostCoefficients, n_originals: int, n_synthetic: int) -> CostEstimate:
    """Price ``n_originals`` real images and ``n_synthetic`` made ones with ``coeffs``."""
    for name, n in (("original", n_originals), ("synthetic", n_synthetic)):
        if n < 0:
            raise ConfigError(f"number of {name} images is {n}: give a count of 0 or more")
    counts = {"once": 1, "originals": n_originals, "synthetic": n_synthetic}
    rows = []
    for key, (what, per) in TERMS.items():
        k = float(getattr(coeffs, key))
        rows.append((key, what, k, counts[per], k * counts[per]))
    total = sum(r[4] for r in rows)
    terms = [
        CostTerm(key=key, what=what, coefficient=k, count=n, seconds=s,
                 share=s / total if total > 0 else 0.0,
                 source=coeffs.source.get(key, "not stated"))
        for key, what, k, n, s in rows
    ]  # fmt: skip
    return CostEstimate(label=coeffs.label, n_originals=n_originals, n_synthetic=n_synthetic,
                        terms=terms, total_s=total, total_hours=total / 3600)  # fmt: skip


# ------------------------------------------------------------------ measuring on a run


Measured = tuple[float, str]  # seconds per unit, and how it was measured


def coefficients_from_run(run: Run, arm: str | None = None) -> CostCoefficients:
    """Each coefficient measured from ``run``'s stage manifests (wall time on its machine).

    ``arm`` picks the ``plan``/``generate``/``filter`` stages (default: ``targeted`` if the
    run has it, else the first arm found). A coefficient whose stage is missing, unfinished
    or did no new work keeps the paper's A100 figure, and its source says why.
    """
    if not run.root.is_dir():
        raise ConfigError(f"run folder {run.root} does not exist; give the folder of a run "
                          "(made by `atlantis ingest ... --out RUN`) to --from-run")  # fmt: skip
    manifests = run.stages()
    names = [m.stage for m in manifests]
    if not names:
        raise ConfigError(f"{run.root}: no stage manifest found (RUN/<stage>/manifest.json); "
                          "run some stages first, or use the paper defaults")  # fmt: skip
    arm = arm or _pick_arm(names)
    done = {m.stage: m for m in manifests if m.status == "done"}
    values: dict[str, float] = {}
    source: dict[str, str] = {}

    def put(key: str, measured: Measured | str) -> None:
        if isinstance(measured, str):  # a reason to keep the paper figure
            values[key] = float(getattr(PAPER_A100, key))
            source[key] = f"paper A100 default ({measured})"
        else:
            values[key], source[key] = measured

    def need(name: str) -> StageManifest | str:
        if name in done:
            return done[name]
        state = "not in run" if name not in names else "not finished"
        return f"stage {name} {state}"

    caption, plan, gen, filt = (need(n) for n in ("caption", f"plan/{arm}",
                                                  f"generate/{arm}", f"filter/{arm}"))  # fmt: skip
    put("gamma", _gamma([m for m in done.values() if _arm_of(m.stage) in (None, arm)]))
    put("k_f", _features(caption, _embed_stage(done)))
    put("k_i", _per(need("insight"), "train_images", (), "training image"))
    k_a, k_d = _plan(plan)
    put("k_a", k_a)
    put("k_d", k_d)
    put("k_s", _generation(gen))
    put("k_o", _filter(filt))
    return CostCoefficients(label=f"measured on {run.root} (arm {arm})", source=source, **values)


def is_paper_default(source: str) -> bool:
    """True for a measured run's coefficient that fell back to the paper figure."""
    return source.startswith("paper A100 default")


def _arm_of(stage: str) -> str | None:
    parts = stage.split("/")
    return parts[1] if len(parts) > 1 and parts[0] in ARM_STAGES else None


def _pick_arm(names: list[str]) -> str:
    arms = [a for n in names if (a := _arm_of(n)) is not None]
    return "targeted" if "targeted" in arms or not arms else arms[0]


def _seconds(m: StageManifest, keys: tuple[str, ...]) -> Measured:
    """Seconds under the named timers, else the stage's wall time (``total_s`` or timestamps)."""
    named = [k for k in keys if k in m.timings]
    if named:
        return sum(m.timings[k] for k in named), " + ".join(f"{m.stage} {k}" for k in named)
    if "total_s" in m.timings:
        return m.timings["total_s"], f"{m.stage} total_s (stage wall time)"
    end = datetime.fromisoformat(m.finished_at or m.started_at)
    secs = (end - datetime.fromisoformat(m.started_at)).total_seconds()
    return secs, f"{m.stage} finished_at - started_at (not timed; whole seconds)"


def _per(m: StageManifest | str, count: str, keys: tuple[str, ...], unit: str) -> Measured | str:
    if isinstance(m, str):
        return m
    n = m.counts.get(count, 0)
    if n <= 0:
        return f"stage {m.stage} counted no {unit}s ({count}=0)"
    secs, how = _seconds(m, keys)
    return secs / n, f"{how} / {n} {unit}s"


def _computed(m: StageManifest, key: str, unit: str) -> Measured | str:
    """Per-image time of a cached stage: divide by the images it *computed* this time."""
    c = m.counts
    if c.get("computed", 0) > 0:
        return _per(m, "computed", (key,), unit)
    if c.get("cached", 0) > 0 or m.stage.startswith("embed/"):
        return f"stage {m.stage} computed nothing new (all cached): no time to measure"
    return _per(m, "images", (key,), unit)  # a captioner that computes nothing (metadata)


def _embed_stage(done: dict[str, StageManifest]) -> StageManifest | None:
    """The embedder the insight read, else the most recently finished one."""
    insight = done.get("insight")
    for name in insight.input_hashes if insight else ():
        if name.startswith("embed/") and name in done:
            return done[name]
    embeds = [m for n, m in done.items() if n.startswith("embed/")]
    return max(embeds, key=lambda m: m.finished_at or "", default=None)


def _features(caption: StageManifest | str, embed: StageManifest | None) -> Measured | str:
    cap = caption if isinstance(caption, str) else _computed(caption, "caption_s", "image")
    if isinstance(cap, str):
        return cap
    value, how = cap
    if not isinstance(caption, str) and caption.info.get("is_model") is False:
        how += f" (captioner '{caption.info.get('captioner')}' is not a model)"
    emb = _computed(embed, "embed_s", "image") if embed else "no embed stage in run"
    if isinstance(emb, str):
        return value, f"{how}; feature extraction not counted ({emb})"
    return value + emb[0], f"{how} + {emb[1]}"


def _gamma(stages: list[StageManifest]) -> Measured | str:
    loads = [(m.stage, m.timings["load_s"]) for m in stages if "load_s" in m.timings]
    if not loads:
        return 0.0, "not measured: no stage times its model loading apart (load_s)"
    how = " + ".join(f"{stage} load_s" for stage, _ in loads)
    return sum(s for _, s in loads), f"{how} (other stages' loading is inside their k)"


def _plan(m: StageManifest | str) -> tuple[Measured | str, Measured | str]:
    """(k_a, k_d): split when the manifest times the fixed part apart, else all per item."""
    if isinstance(m, str):
        return m, m
    n = m.counts.get("items", 0)
    if n <= 0:
        why = f"stage {m.stage} planned no items"
        return why, why
    fixed_keys = tuple(k for k in ("objective_s", "reference_s") if k in m.timings)
    total, how = _seconds(m, ("plan_s",))
    note = f" ({m.counts['rounds']} rounds)" if m.counts.get("rounds", 1) > 1 else ""
    if "descriptions_s" in m.timings:
        d = m.timings["descriptions_s"]
        fixed = sum(m.timings[k] for k in fixed_keys) if fixed_keys else total - d
        fixed_how = " + ".join(fixed_keys) if fixed_keys else f"{how} - descriptions_s"
        return ((max(0.0, fixed), f"{m.stage} {fixed_how}"),
                (d / n, f"{m.stage} descriptions_s / {n} items{note}"))  # fmt: skip
    if m.info.get("planner") == "naive":
        return ((0.0, f"{m.stage}: the naive planner writes no objective"),
                (total / n, f"{how} / {n} items (templated prompts, no LLM){note}"))  # fmt: skip
    return (
        (0.0, f"{m.stage} does not time the objective apart: folded into k_d"),
        (total / n, f"{how} / {n} items, objective + reference included{note}"),
    )


def _generation(m: StageManifest | str) -> Measured | str:
    if isinstance(m, str):
        return m
    made = m.counts.get("made", 0)
    if made <= 0:
        return f"stage {m.stage} made no new image ({m.counts.get('reused', 0)} reused)"
    if "per_image_s" in m.timings:
        value, how = m.timings["per_image_s"], f"{m.stage} per_image_s (compute per made image)"
    else:
        secs, how = _seconds(m, ("generate_s",))
        value, how = secs / made, f"{how} / {made} made images"
    if m.info.get("kind") == "retrieved":
        how += "; retrieval, not generation: far below the cost of generating an image"
    return value, how


def _filter(m: StageManifest | str) -> Measured | str:
    if isinstance(m, str):
        return m
    n = m.counts.get("synthetic", 0)
    if n <= 0:
        return f"stage {m.stage} had no synthetic image to filter"
    sweep = max(1, len(m.info.get("deltas") or [])) if m.info.get("sweep") else 1
    if "filter_s" in m.timings or "embed_s" in m.timings:
        secs = m.timings.get("embed_s", 0.0) + m.timings.get("filter_s", 0.0) / sweep
        how = f"{m.stage} (embed_s + filter_s{f' / {sweep} deltas' if sweep > 1 else ''})"
    else:
        secs, how = _seconds(m, ())
    return secs / n, f"{how} / {n} synthetic images"
