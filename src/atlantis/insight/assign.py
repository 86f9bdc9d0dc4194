"""Domain assignment: every training image gets its domain(s), giving class x domain counts.

DomainInfer names the domains; targeting needs to know how many images of each class fall
in each domain. Each image is placed by the first rule that applies:

1. ``label``: its record's ``domains`` (e.g. the manifest's ``domain`` column) that name
   inferred domains (case-insensitive);
2. ``keyword``: every domain with a keyword among its captions' lemmatised tokens (an
   image can be in several: "a bird flying over the sea" is flying and sea);
3. ``embedding``: optionally, the domain whose text is most similar to the caption under a
   sentence-embedding model (``text_embedder``), when the similarity is at least
   ``min_similarity``;
4. ``none``: unassigned; it counts in no cell.

A *scarce cell* is a (class, domain) pair with fewer than ``fraction`` x expected images,
where expected = the class's assigned images / number of domains: the same definition as
the ``domain_scarcity`` detector, so the report and the planner agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from atlantis.data.records import ImageRecord
from atlantis.insight.frequency import TaggedRecords
from atlantis.insight.schema import DomainSet, ScarceCell

TextEmbedder = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised rows


@dataclass
class Assignment:
    domains: dict[str, list[str]]  # record id -> domain names ([] when unassigned)
    method: dict[str, str]  # record id -> label | keyword | embedding | none
    class_domain_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def method_counts(self) -> dict[str, int]:
        counts = Counter(self.method.values())
        return {m: counts.get(m, 0) for m in ("label", "keyword", "embedding", "none")}


def assign_domains(
    records: Sequence[ImageRecord],
    tagged: TaggedRecords,
    domain_set: DomainSet,
    *,
    text_embedder: TextEmbedder | None = None,
    min_similarity: float = 0.3,
) -> Assignment:
    """Place every record (see the module docstring); ``tagged`` is aligned with ``records``."""
    names = [d.name for d in domain_set.domains]
    by_lower = {n.lower(): n for n in names}
    keywords = [(d.name, {k.lower() for k in d.keywords}) for d in domain_set.domains]
    out, method = {}, {}
    for rec, toks in zip(records, tagged.tokens, strict=True):
        labelled = list(
            dict.fromkeys(by_lower[d.lower()] for d in rec.domains if d.lower() in by_lower)
        )
        if labelled:
            out[rec.id], method[rec.id] = labelled, "label"
            continue
        lemmas = {t for t, _ in toks}
        matched = [name for name, kws in keywords if kws & lemmas]
        out[rec.id], method[rec.id] = matched, "keyword" if matched else "none"
    if text_embedder is not None:
        _assign_by_similarity(records, domain_set, out, method, text_embedder, min_similarity)
    labels = [r.label for r in records]  # the (possibly inferred) classes: tagged.labels
    if len(tagged.labels) == len(records):
        labels = tagged.labels
    counts = class_domain_counts(labels, [out[r.id] for r in records], names)
    return Assignment(out, method, counts)


def _assign_by_similarity(records, domain_set, out, method, embed: TextEmbedder,
                          min_similarity: float) -> None:  # fmt: skip
    todo = [r for r in records if method[r.id] == "none" and r.captions]
    if not todo:
        return
    domain_texts = [f"{d.name}: {d.description} {' '.join(d.keywords)}".strip()
                    for d in domain_set.domains]  # fmt: skip
    sims = embed([" ".join(r.captions) for r in todo]) @ embed(domain_texts).T
    best = sims.argmax(axis=1)
    for r, j, row in zip(todo, best, sims, strict=True):
        if row[j] >= min_similarity:
            out[r.id], method[r.id] = [domain_set.domains[int(j)].name], "embedding"


def class_domain_counts(
    labels: Sequence[str], domains: Sequence[Sequence[str]], domain_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Class -> domain -> images, every domain present (zeros included), classes in order."""
    counts: dict[str, dict[str, int]] = {}
    for label, doms in zip(labels, domains, strict=True):
        if not label:
            continue
        row = counts.setdefault(label, dict.fromkeys(domain_names, 0))
        for d in doms:
            row[d] += 1
    return counts


def scarce_cells(counts: dict[str, dict[str, int]], fraction: float = 0.5) -> list[ScarceCell]:
    """Cells below ``fraction`` of their class's balanced share, most severe first.

    A class with no assigned image has no domain evidence and gives no cell.
    """
    cells = []
    for cls, row in counts.items():
        total = sum(row.values())
        if total == 0 or len(row) < 2:
            continue
        expected = total / len(row)
        cells += [ScarceCell(class_name=cls, domain=d, count=c, expected=round(expected, 3))
                  for d, c in row.items() if c < fraction * expected]  # fmt: skip
    return sorted(cells, key=lambda s: (s.count / s.expected, -s.expected, s.class_name, s.domain))


def minilm_embedder() -> TextEmbedder:
    """The packaged all-MiniLM-L6-v2 sentence encoder (optional; loads offline)."""
    from atlantis.insight.minilm import load_minilm

    return load_minilm()
