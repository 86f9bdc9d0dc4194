"""The offline demo dataset: the same emoji drawn by several vendors, from the npm registry.

Classes are emoji *subcategories* (``animal-mammal``, ``food-fruit``, ``transport-air``...,
84 of them with at least 6 emoji) and domains are the vendors' art styles (Google's Noto,
Twitter's Twemoji). That gives real images with a class x domain structure, which is what
ATLANTIS's targeting needs, and it installs from a package registry with no model hub.

Licences: ``emoji-datasource-google`` images are Apache-2.0 (Noto Emoji);
``emoji-datasource-twitter`` images are CC-BY-4.0 (Twemoji, (c) Twitter, Inc. and other
contributors). ``ATTRIBUTION.txt`` is written beside the images.

The layout written is the ``manifest`` format (``manifest.jsonl`` + ``images/``), so the
demo ingests it exactly as a user's own manifest dataset would be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from atlantis.errors import AtlantisError
from atlantis.store.atomic import atomic_write_text

VERSION = "16.0.0"
VENDORS: dict[str, str] = {"google": "Apache-2.0 (Noto Emoji)", "twitter": "CC-BY-4.0 (Twemoji)"}
EXCLUDED_CATEGORIES = {"Flags", "Component"}  # flags are one shape; components are skin swatches
EXCLUDED_SUBCATEGORIES = {"alphanum", "keycap"}  # letters and digits, not objects
MIN_PER_CLASS = 6
DONE_MARKER = ".complete-v2"  # v2: adds the retrieval pool (pool.jsonl)


def data_home() -> Path:
    """Where datasets are kept: ``$ATLANTIS_HOME`` or ``~/.cache/atlantis``."""
    return Path(os.environ.get("ATLANTIS_HOME", Path.home() / ".cache" / "atlantis")).expanduser()


def default_emoji_root() -> Path:
    return data_home() / "datasets" / f"emoji-{VERSION}"


def is_ready(root: Path) -> bool:
    return (root / DONE_MARKER).exists() and (root / "manifest.jsonl").exists()


def has_pool(root: Path) -> bool:
    return (root / "pool.jsonl").exists()


def fetch_emoji(root: Path | None = None, *, force: bool = False) -> Path:
    """Download (``npm pack``) the vendor packages and write the manifest dataset at ``root``.

    Idempotent: a finished dataset (marker file present) is returned as is. The folder is
    built in a temporary sibling and renamed into place, so an interrupted fetch never
    leaves a half dataset that looks finished.
    """
    root = Path(root or default_emoji_root()).expanduser().resolve()
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
        for vendor in VENDORS:
            tgz = _npm_pack(npm, f"emoji-datasource-{vendor}@{VERSION}", tmp_path)
            emoji_json = _extract(tgz, vendor, build / "images" / vendor) or emoji_json
            tgz.unlink()
        if emoji_json is None:
            raise AtlantisError(
                "the emoji packages held no emoji.json; the registry copy is damaged"
            )
        entries = json.loads(emoji_json)
        n = write_manifest(entries, build)
        write_pool(entries, build)
        atomic_write_text(build / "ATTRIBUTION.txt", _attribution())
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


def select_emoji(entries: list[dict]) -> list[dict]:
    """The demo's emoji: object-like subcategories with >= MIN_PER_CLASS emoji, in sort order."""
    usable = [
        e for e in entries
        if e.get("category") not in EXCLUDED_CATEGORIES
        and e.get("subcategory") not in EXCLUDED_SUBCATEGORIES
        and all(e.get(f"has_img_{v}") for v in VENDORS)
    ]  # fmt: skip
    counts = Counter(e["subcategory"] for e in usable)
    chosen = [e for e in usable if counts[e["subcategory"]] >= MIN_PER_CLASS]
    return sorted(chosen, key=lambda e: e.get("sort_order", 0))


def write_manifest(entries: list[dict], root: Path) -> int:
    """Write ``manifest.jsonl``: one row per (emoji, vendor) whose PNG exists."""
    lines = []
    for e in select_emoji(entries):
        for vendor in VENDORS:
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


def write_pool(entries: list[dict], root: Path) -> int:
    """Write ``pool.jsonl``: the vendor images the manifest does NOT use, as a retrieval pool.

    The pool is the other emoji (flags, keycaps, small subcategories) and every skin-tone
    variant, each captioned with its emoji.json name (the stand-in for web alt-text) and
    tagged with the subcategory of its base emoji, so a run can withhold the variants of
    its test classes (a zero-shot test concept must not leak into training). Rows:
    ``{"file": "<vendor>/<png>", "caption": ..., "subcategory": ...}``, files relative to
    ``images/``.
    """
    used = {e["image"] for e in select_emoji(entries)}
    rows = []
    for e in sorted(entries, key=lambda e: e.get("sort_order", 0)):
        name = e["name"].lower()
        variants = [(e["image"], name)] if e["image"] not in used else []
        for tone, v in sorted((e.get("skin_variations") or {}).items()):
            variants.append((v["image"], f"{name}: {_TONES.get(tone, 'skin tone')}"))
        for image, caption in variants:
            for vendor in VENDORS:
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


def _attribution() -> str:
    return (
        f"Emoji images from the npm packages emoji-datasource-<vendor>@{VERSION}.\n"
        "google: Noto Emoji, Apache License 2.0.\n"
        "twitter: Twemoji (c) Twitter, Inc. and other contributors, CC-BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/).\n"
        "Class labels (subcategories) and names from emoji.json of the same packages (MIT).\n"
    )
