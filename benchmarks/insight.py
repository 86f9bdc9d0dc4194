"""Benchmark the Data Insight Generator offline: FrequencyEval at SOP scale, the whole stage.

Run:  .venv/bin/python benchmarks/insight.py [--captions N] [--skip-demo]

1. FrequencyEval over 120,000 SOP-like product captions (Stanford Online Products has
   120,053 images of 22,634 products in 12 super-categories) with the offline tagger
   (``wordnet-lexicon``): captions are generated from a product vocabulary, seeded, e.g.
   "a black leather office chair standing on a white background". Timed: loading WordNet,
   tagging every caption, counting the overall and per-class tables. Target: < 60 s.
2. The whole offline ``atlantis insight`` (rules backend, no LLM; metadata captions) on the
   demo data (emoji by vendor, ``fetch_emoji()``): ingest (manifest), caption, insight, each
   timed, with the insight stage's per-function timings. Target: < 2 min.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

PRODUCTS = {
    "bicycle": ["bicycle", "road bike", "mountain bike", "bike frame", "tricycle"],
    "cabinet": ["cabinet", "cupboard", "dresser", "drawer unit", "filing cabinet"],
    "chair": ["chair", "office chair", "armchair", "stool", "rocking chair"],
    "coffee_maker": ["coffee maker", "espresso machine", "coffee grinder", "percolator"],
    "fan": ["fan", "ceiling fan", "desk fan", "tower fan"],
    "kettle": ["kettle", "teakettle", "electric kettle", "teapot"],
    "lamp": ["lamp", "table lamp", "floor lamp", "desk lamp", "lantern"],
    "mug": ["mug", "coffee mug", "cup", "travel mug", "beer mug"],
    "sofa": ["sofa", "couch", "loveseat", "sectional", "futon"],
    "stapler": ["stapler", "staple gun", "hole punch"],
    "table": ["table", "coffee table", "dining table", "desk", "side table"],
    "toaster": ["toaster", "toaster oven", "sandwich maker"],
}  # fmt: skip
COLOURS = [
    "black",
    "white",
    "red",
    "blue",
    "silver",
    "grey",
    "brown",
    "green",
    "beige",
    "chrome",
    "yellow",
    "orange",
]
MATERIALS = [
    "metal",
    "plastic",
    "wooden",
    "leather",
    "glass",
    "ceramic",
    "steel",
    "fabric",
    "bamboo",
    "aluminium",
]
STATES = ["standing", "lying on its side", "hanging on a wall", "displayed", "stacked",
          "folded", "held by a person", "shown from above", "boxed", "assembled"]  # fmt: skip
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ve",
    "ta",
    "ro",
    "su",
    "ne",
    "bi",
    "do",
    "fa",
    "gu",
    "hi",
    "ja",
    "ko",
    "lu",
    "ma",
    "no",
    "pe",
    "ri",
    "sa",
    "te",
    "vo",
    "wi",
    "ze",
]
EXTRAS = ["", ", close up", " with a price tag", " with a cable", " next to a plant",
          " and its remote control", " in its packaging", ", seen from the side"]  # fmt: skip
SCENES = ["on a white background", "in a living room", "on a kitchen counter", "in a garage",
          "on a wooden floor", "next to a window", "in an office", "on a shelf", "in a store",
          "in a garden", "on a street", "in a bedroom"]  # fmt: skip


def sop_like_records(n: int, seed: int = 0) -> list:
    """``n`` training records: products of 2..12 images, one caption each, SOP-shaped.

    Each product has a made-up brand name (syllables: ~10,000 distinct words WordNet does
    not know), so the tagger sees a realistic open vocabulary, not a few hundred words.
    """
    from atlantis.data.records import ImageRecord

    rng = random.Random(seed)
    records, product = [], 0
    while len(records) < n:
        category = rng.choice(list(PRODUCTS))
        noun = rng.choice(PRODUCTS[category])
        colour, material = rng.choice(COLOURS), rng.choice(MATERIALS)
        brand = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        for _ in range(min(rng.randint(2, 12), n - len(records))):
            caption = (f"a {colour} {material} {noun} by {brand} {rng.choice(STATES)} "
                       f"{rng.choice(SCENES)}{rng.choice(EXTRAS)}")  # fmt: skip
            i = len(records)
            records.append(ImageRecord(id=f"p{i}", path=f"{category}/{i}.jpg", split="train",
                                       label=f"{category}_{product}", captions=[caption]))  # fmt: skip
        product += 1
    return records


def bench_frequency(n: int) -> dict[str, float]:
    from atlantis.insight.frequency import frequency_eval, tag_records
    from atlantis.insight.text import WordNetTagger

    records = sop_like_records(n)
    t0 = time.perf_counter()
    tagger = WordNetTagger()
    t1 = time.perf_counter()
    tagged = tag_records(records, tagger)
    t2 = time.perf_counter()
    table = frequency_eval(tagged, top_n=50, per_class_n=10)
    t3 = time.perf_counter()
    top = ", ".join(f"{t.token}/{t.pos[0]} {t.count}" for t in table.top[:8])
    print(f"FrequencyEval, {n:,} captions of {len(table.per_class):,} products "
          f"(tagger {table.tagger}, {len({t for toks in tagged.tokens for t in toks}):,} "
          f"distinct tokens)")  # fmt: skip
    print(f"  load WordNet  {t1 - t0:6.2f} s")
    print(f"  tag captions  {t2 - t1:6.2f} s  ({n / (t2 - t1):,.0f} captions/s)")
    print(f"  count tables  {t3 - t2:6.2f} s")
    print(f"  total         {t3 - t0:6.2f} s  (target < 60 s)  top: {top}")
    return {"total_s": t3 - t0}


def bench_demo() -> dict[str, float]:
    from atlantis.caption.config import CaptionConfig
    from atlantis.caption.stage import caption
    from atlantis.config import DataConfig
    from atlantis.data.emoji import fetch_emoji
    from atlantis.data.ingest import ingest
    from atlantis.insight.config import InsightConfig
    from atlantis.insight.stage import insight, load_insight
    from atlantis.store.run import Run

    root = fetch_emoji()
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp) / "run")
        t0 = time.perf_counter()
        ingest(run, DataConfig(format="manifest", root=str(root)))
        t1 = time.perf_counter()
        caption(run, CaptionConfig(captioner="metadata"), progress=False)
        t2 = time.perf_counter()
        m = insight(run, InsightConfig(), "rules", progress=False)
        t3 = time.perf_counter()
        ins = load_insight(run)
    print(f"\natlantis insight --llm rules on the emoji demo ({m.counts['train_images']:,} train "
          f"images, {m.counts['classes']} classes, {m.counts['domains']} domains)")  # fmt: skip
    print(f"  ingest        {t1 - t0:6.2f} s")
    print(f"  caption       {t2 - t1:6.2f} s  (metadata captions)")
    print(f"  insight       {t3 - t2:6.2f} s")
    for key, value in m.timings.items():
        if key.endswith("_s") and key != "total_s":
            print(f"    {key[:-2]:<18}{value:6.2f} s")
    print(f"  total         {t3 - t0:6.2f} s  (target < 120 s)")
    print(f"  domains: {', '.join(d.name for d in ins.domains)}; under-represented: "
          f"{len(ins.under_represented_classes)}; new classes: {', '.join(ins.new_classes)}")  # fmt: skip
    return {"total_s": t3 - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=120_000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args(argv)
    ok = bench_frequency(args.captions)["total_s"] < 60
    if not args.skip_demo:
        ok &= bench_demo()["total_s"] < 120
    print("\nall targets met" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
