"""The offline demo dataset: the same emoji drawn by several vendors, from the npm registry.

Classes are emoji *subcategories* (``animal-mammal``, ``food-fruit``, ``transport-air``...,
84 of them with at least 6 emoji) and domains are the vendors' art styles (Google's Noto,
Twitter's Twemoji). That gives real images with a class x domain structure, which is what
ATLANTIS's targeting needs, and it installs from a package registry with no model hub.

Vendors are a choice (``vendors``, default Google and Twitter; Apple and Facebook draw the
same emoji). Licences: ``emoji-datasource-google`` images are Apache-2.0 (Noto Emoji);
``emoji-datasource-twitter`` images are CC-BY-4.0 (Twemoji, (c) Twitter, Inc. and other
contributors); Apple's and Facebook's are their owners' (research and demonstration only).
``ATTRIBUTION.txt`` is written beside the images.

**The retrieval pool** (``pool.jsonl``) stands in for a user's unlabelled archive: a seeded
share (``pool_share``, 30 %) of each class's emoji leaves the dataset with every vendor's
drawing and its skin-tone variants, so the pool has images of every class in every domain,
plus the emoji no class uses (flags, keycaps, small subcategories) as distractors. It never
holds a dataset emoji or a skin-tone variant of one (a near copy). The truth file
(:func:`write_pool_truth`: class and vendor per pool image) is for the report's fidelity
only.

The layout written is the ``manifest`` format (``manifest.jsonl`` + ``images/``), so the
demo ingests it exactly as a user's own manifest dataset would be.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from atlantis.errors import AtlantisError
from atlantis.store.atomic import atomic_write_text

VERSION = "16.0.0"
#: Every vendor the emoji-datasource packages draw, with its images' licence.
KNOWN_VENDORS: dict[str, str] = {
    "google": "Apache-2.0 (Noto Emoji)",
    "twitter": "CC-BY-4.0 (Twemoji, (c) Twitter, Inc. and other contributors)",
    "apple": "(c) Apple Inc.; for research and demonstration only",
    "facebook": "(c) Meta Platforms, Inc.; for research and demonstration only",
}
DEFAULT_VENDORS: tuple[str, ...] = ("google", "twitter")
EXCLUDED_CATEGORIES = {"Flags", "Component"}  # flags are one shape; components are skin swatches
EXCLUDED_SUBCATEGORIES = {"alphanum", "keycap"}  # letters and digits, not objects
MIN_PER_CLASS = 6  # emoji a subcategory needs to be a class (before the pool's share leaves)
MIN_IN_DATASET = 4  # emoji of each class that always stay in the dataset
POOL_SHARE = 0.3  # of each class's emoji moved (with every vendor's image) into the pool
DONE_MARKER = ".complete-v3"  # v3: the pool holds a seeded share of every class


def data_home() -> Path:
    """Where datasets are kept: ``$ATLANTIS_HOME`` or ``~/.cache/atlantis``."""
    return Path(os.environ.get("ATLANTIS_HOME", Path.home() / ".cache" / "atlantis")).expanduser()


def check_vendors(vendors: Sequence[str]) -> tuple[str, ...]:
    """The vendors as a tuple, refused when unknown, repeated or fewer than two."""
    out = tuple(v.strip().lower() for v in vendors if v.strip())
    unknown = [v for v in out if v not in KNOWN_VENDORS]
    if unknown or len(set(out)) != len(out) or len(out) < 2:
        raise AtlantisError(
            f"emoji vendors {list(vendors)}: give two or more different ones of "
            f"{', '.join(KNOWN_VENDORS)} (they are the dataset's domains)"
        )
    return out


def default_emoji_root(vendors: Sequence[str] = DEFAULT_VENDORS, *, pool_share: float = POOL_SHARE,
                       seed: int = 0) -> Path:  # fmt: skip
    """``<data home>/datasets/emoji-<version>-<vendors>[-pool<share>][-seed<n>]``."""
    name = f"emoji-{VERSION}-{'-'.join(check_vendors(vendors))}"
    if pool_share != POOL_SHARE:
        name += f"-pool{pool_share:g}"
    if seed:
        name += f"-seed{seed}"
    return data_home() / "datasets" / name


def is_ready(root: Path) -> bool:
    return (root / DONE_MARKER).exists() and (root / "manifest.jsonl").exists()


def has_pool(root: Path) -> bool:
    return (root / "pool.jsonl").exists()


def dataset_vendors(root: Path) -> list[str]:
    """The vendors (domains) of a fetched dataset, in their order (``dataset.json``)."""
    info = root / "dataset.json"
    if info.exists():
        return list(json.loads(info.read_text(encoding="utf-8"))["vendors"])
    rows = (json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines() if x)
    return list(dict.fromkeys(r["domain"] for r in rows))


def fetch_emoji(root: Path | None = None, *, force: bool = False,
                vendors: Sequence[str] = DEFAULT_VENDORS, pool_share: float = POOL_SHARE,
                seed: int = 0) -> Path:  # fmt: skip
    """Download (``npm pack``) the vendor packages and write the manifest dataset at ``root``.

    ``vendors`` are the domains (two or more of ``KNOWN_VENDORS``). ``pool_share`` of each
    class's emoji, chosen by a keyed hash of (``seed``, emoji), leave the dataset for the
    retrieval pool with every vendor's drawing (see :func:`split_pool`).

    Idempotent: a finished dataset (marker file present) is returned as is. The folder is
    built in a temporary sibling and renamed into place, so an interrupted fetch never
    leaves a half dataset that looks finished.
    """
    vendors = check_vendors(vendors)
    if not 0 <= pool_share < 1:
        raise AtlantisError(f"pool_share {pool_share}: give a share in [0, 1)")
    root = Path(root or default_emoji_root(vendors, pool_share=pool_share, seed=seed))
    root = root.expanduser().resolve()
    if is_ready(root) and not force:
        return root
    npm = shutil.which("npm")
    if npm is None:
        raise AtlantisError(
            "the demo dataset is fetched with npm, which is not installed. Install Node.js and "
            "npm (Debian: apt-get install npm), or point --root at an existing copy"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".emoji-") as tmp:
        tmp_path = Path(tmp)
        build = tmp_path / "dataset"
        (build / "images").mkdir(parents=True)
        emoji_json = None
        for vendor in vendors:
            tgz = _npm_pack(npm, f"emoji-datasource-{vendor}@{VERSION}", tmp_path)
            emoji_json = _extract(tgz, vendor, build / "images" / vendor) or emoji_json
            tgz.unlink()
        if emoji_json is None:
            raise AtlantisError(
                "the emoji packages held no emoji.json; the registry copy is damaged"
            )
        entries = json.loads(emoji_json)
        dataset, pooled = split_pool(select_emoji(entries, vendors), pool_share, seed)
        n = write_manifest(dataset, build, vendors)
        n_pool = write_pool(entries, build, vendors, dataset=dataset, pooled=pooled)
        info = {"version": VERSION, "vendors": list(vendors), "pool_share": pool_share,
                "seed": seed, "images": n, "pool_images": n_pool}  # fmt: skip
        atomic_write_text(build / "dataset.json", json.dumps(info, indent=1) + "\n")
        atomic_write_text(build / "ATTRIBUTION.txt", _attribution(vendors))
        atomic_write_text(build / DONE_MARKER, f"{n} images\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(build, root)
    return root


def _npm_pack(npm: str, spec: str, dest: Path) -> Path:
    proc = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(dest), "--json", "--silent"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AtlantisError(
            f"npm pack {spec} failed (exit {proc.returncode}): {proc.stderr[-800:]}"
        )
    files = sorted(dest.glob("*.tgz"))
    if not files:
        raise AtlantisError(f"npm pack {spec} produced no archive")
    return files[0]


def _extract(tgz: Path, vendor: str, out: Path) -> str | None:
    """Extract the vendor's 64 px PNGs into ``out``; return emoji.json's text."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"package/img/{vendor}/64/"
    emoji_json = None
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if member.name == "package/emoji.json":
                fh = tar.extractfile(member)
                emoji_json = fh.read().decode("utf-8") if fh else None
            elif (
                member.isfile() and member.name.startswith(prefix) and member.name.endswith(".png")
            ):
                name = Path(member.name).name  # basename only: nothing can escape ``out``
                fh = tar.extractfile(member)
                if fh is not None:
                    (out / name).write_bytes(fh.read())
    return emoji_json


def select_emoji(entries: list[dict], vendors: Sequence[str] = DEFAULT_VENDORS) -> list[dict]:
    """The classes' emoji: object-like subcategories with >= MIN_PER_CLASS emoji that every
    vendor draws, in sort order."""
    usable = [
        e for e in entries
        if e.get("category") not in EXCLUDED_CATEGORIES
        and e.get("subcategory") not in EXCLUDED_SUBCATEGORIES
        and all(e.get(f"has_img_{v}") for v in vendors)
    ]  # fmt: skip
    counts = Counter(e["subcategory"] for e in usable)
    chosen = [e for e in usable if counts[e["subcategory"]] >= MIN_PER_CLASS]
    return sorted(chosen, key=lambda e: e.get("sort_order", 0))


def split_pool(chosen: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(dataset, pool)``: per class, ``round(share x n)`` emoji (at least one when share > 0,
    never leaving fewer than MIN_IN_DATASET) go to the pool, picked by a keyed hash of
    (seed, short name): reproducible anywhere and independent of the entries' order.

    Whole emoji move, with every vendor's drawing, so the pool has images of *every* class
    in *every* domain and never the same emoji as the dataset in another vendor's style.
    """
    by_class: dict[str, list[dict]] = {}
    for e in chosen:
        by_class.setdefault(e["subcategory"], []).append(e)
    moved: set[str] = set()
    for members in by_class.values():
        n = min(max(round(share * len(members)), 1 if share > 0 else 0),
                len(members) - MIN_IN_DATASET)  # fmt: skip
        ranked = sorted(members, key=lambda e: _key(seed, e["short_name"]))
        moved.update(e["short_name"] for e in ranked[: max(n, 0)])
    return ([e for e in chosen if e["short_name"] not in moved],
            [e for e in chosen if e["short_name"] in moved])  # fmt: skip


def _key(seed: int, name: str) -> bytes:
    return hashlib.sha256(f"emoji-pool:{seed}:{name}".encode()).digest()


def write_manifest(entries: list[dict], root: Path,
                   vendors: Sequence[str] = DEFAULT_VENDORS) -> int:  # fmt: skip
    """Write ``manifest.jsonl``: one row per (emoji, vendor) whose PNG exists."""
    lines = []
    for e in entries:
        for vendor in vendors:
            rel = f"images/{vendor}/{e['image']}"
            if not (root / rel).exists():
                continue
            row = {
                "id": f"{vendor}/{e['short_name']}",
                "path": rel,
                "label": e["subcategory"],
                "caption": f"{e['name'].lower()} emoji",
                "domain": vendor,
            }
            lines.append(json.dumps(row))
    atomic_write_text(root / "manifest.jsonl", "\n".join(lines) + "\n")
    return len(lines)


def write_pool(entries: list[dict], root: Path, vendors: Sequence[str] = DEFAULT_VENDORS, *,
               dataset: list[dict], pooled: list[dict]) -> int:  # fmt: skip
    """Write ``pool.jsonl``: vendor images the dataset does not hold, as a retrieval pool.

    The pool is the emoji ``split_pool`` moved out of the dataset (every class has some)
    and every other emoji no class uses (flags, keycaps, small subcategories: distractors),
    each with its skin-tone variants. The dataset's own emoji and their skin-tone variants
    (near copies of dataset images) are never in it. Each row is captioned with its
    emoji.json name (the stand-in for web alt-text) and tagged with the subcategory of its
    base emoji (the truth file's class). Rows: ``{"file": "<vendor>/<png>", "caption": ...,
    "subcategory": ...}``, files relative to ``images/``.
    """
    in_dataset = {e["image"] for e in dataset}
    rows = []
    for e in sorted(entries, key=lambda e: e.get("sort_order", 0)):
        if e["image"] in in_dataset:
            continue  # the dataset's emoji: neither it nor its skin-tone variants
        name = e["name"].lower()
        variants = [(e["image"], name)]
        for tone, v in sorted((e.get("skin_variations") or {}).items()):
            variants.append((v["image"], f"{name}: {_TONES.get(tone, 'skin tone')}"))
        for image, caption in variants:
            for vendor in vendors:
                if (root / "images" / vendor / image).exists():
                    rows.append({"file": f"{vendor}/{image}", "caption": f"{caption} emoji",
                                 "subcategory": e.get("subcategory", "")})  # fmt: skip
    atomic_write_text(root / "pool.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def write_pool_truth(root: Path, out: Path) -> int:
    """Write the pool's truth file (``atlantis.data.truth``): per pool image, its class (the
    subcategory of its base emoji) and domain (its vendor, the first path component).

    Only the report reads it, for source fidelity; the planner and the source never do.
    """
    lines = []
    for line in (root / "pool.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            lines.append(json.dumps({"file": row["file"], "class": row["subcategory"],
                                     "domain": row["file"].split("/")[0]}))  # fmt: skip
    atomic_write_text(out, "".join(x + "\n" for x in lines))
    return len(lines)


def pool_captions_without(root: Path, withheld: set[str], out: Path, *,
                          with_domain: bool = True) -> int:  # fmt: skip
    """Write the pool's captions file minus rows whose base subcategory is in ``withheld``.

    ``with_domain`` names the vendor in each caption (``"... emoji, in the twitter
    style"``): the pool stands in for a text-to-image model, which is asked for an image
    *in a domain*, so a request for a Twitter-style image must be able to find one.
    """
    lines = []
    for line in (root / "pool.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["subcategory"] not in withheld:
            caption = row["caption"]
            if with_domain:
                caption += f", in the {row['file'].split('/')[0]} style"
            lines.append(json.dumps({"file": row["file"], "caption": caption}))
    atomic_write_text(out, "".join(x + "\n" for x in lines))
    return len(lines)


_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}


def _attribution(vendors: Sequence[str] = DEFAULT_VENDORS) -> str:
    lines = [f"Emoji images from the npm packages emoji-datasource-<vendor>@{VERSION}."]
    lines += [f"{v}: {KNOWN_VENDORS[v]}." for v in vendors]
    lines.append("Class labels (subcategories) and names from emoji.json of the same packages "
                 "(MIT).")  # fmt: skip
    return "\n".join(lines) + "\n"
