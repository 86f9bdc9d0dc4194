"""FrequencyEval (supplement C.1.1): the informative nouns and verbs of all captions.

Counts are occurrences of lemmatised tokens over every caption of every training image,
overall (top ``top_n``, 50 by default as in the paper) and per class (top ``per_class_n``).
The per-record token lists are kept too (``TaggedRecords``): domain assignment matches
them against domain keywords, so the captions are tagged once per stage.

``domain_tokens`` says what the captions of each domain mention *more than the other
domains do* (images whose captions hold the token, at least ``lift`` times the rate
elsewhere): the words a description or a retrieval query needs to land in that domain
("water" for swimming birds). Domains the captions never tell apart get none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from atlantis.data.records import ImageRecord
from atlantis.insight.schema import FrequencyTable, TokenCount
from atlantis.insight.text import Tagger, Token, get_tagger


@dataclass
class TaggedRecords:
    """The informative tokens of each record's captions, aligned with ``ids``."""

    ids: list[str]
    labels: list[str]
    tokens: list[list[Token]]
    n_captions: int
    tagger: str

    def relabelled(self, labels: Sequence[str]) -> TaggedRecords:
        """The same tokens under other labels (ClassInfer's inferred classes)."""
        return TaggedRecords(self.ids, list(labels), self.tokens, self.n_captions, self.tagger)


def tag_records(records: Sequence[ImageRecord], tagger: Tagger | str = "auto") -> TaggedRecords:
    """Tag every caption of every record (each distinct caption text once)."""
    tagger = get_tagger(tagger) if isinstance(tagger, str) else tagger
    texts = [c for r in records for c in r.captions if c.strip()]
    tagged = iter(tagger.tag_many(texts))
    tokens = [[t for c in r.captions if c.strip() for t in next(tagged)] for r in records]
    return TaggedRecords([r.id for r in records], [r.label for r in records], tokens,
                         len(texts), tagger.name)  # fmt: skip


def frequency_eval(tagged: TaggedRecords, top_n: int = 50, per_class_n: int = 10) -> FrequencyTable:
    """The frequency table: most frequent (lemma, part of speech) pairs, ties by name."""
    overall: Counter[Token] = Counter()
    per_class: dict[str, Counter[Token]] = {}
    for label, toks in zip(tagged.labels, tagged.tokens, strict=True):
        overall.update(toks)
        if label:
            per_class.setdefault(label, Counter()).update(toks)
    return FrequencyTable(
        n_captions=tagged.n_captions,
        tagger=tagged.tagger,
        top=_top(overall, top_n),
        per_class={c: _top(cnt, per_class_n) for c, cnt in per_class.items()},
    )


def _top(counter: Counter[Token], n: int) -> list[TokenCount]:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:n]
    return [TokenCount(token=tok, pos=pos, count=c) for (tok, pos), c in ranked]


def top_tokens(table: FrequencyTable, pos: str, n: int | None = None) -> list[TokenCount]:
    """The table's nouns or verbs only, most frequent first."""
    return [t for t in table.top if t.pos == pos][:n]


def domain_tokens(
    tagged: TaggedRecords,
    domains: Mapping[str, Sequence[str]],
    skip: Collection[str] = (),
    n: int = 5,
    lift: float = 2.0,
    min_share: float = 0.1,
) -> dict[str, list[TokenCount]]:
    """Per domain, up to ``n`` caption tokens distinctive of it (see the module docstring).

    ``domains`` maps record id -> its domains (the assignment); ``skip`` holds words never
    worth reporting (class-name words, the domains' own names and keywords). ``count`` is
    the number of the domain's images whose captions hold the token; a token needs at
    least 2 of them and ``min_share`` of the domain's images: a word of a few captions
    that happens to fall more in one domain (on the demo's emoji, whose two vendors share
    every caption, "square" in 7 of 273 Twitter captions after a scenario cut) is sampling
    noise, not the domain's vocabulary, and would put a wrong word in every description
    of that domain. Ranked by that count, then by the lift, then by name."""
    images: Counter[str] = Counter()
    holding: dict[str, Counter[Token]] = {}
    total: Counter[Token] = Counter()
    for rid, toks in zip(tagged.ids, tagged.tokens, strict=True):
        present = set(toks)
        total.update(present)
        for d in dict.fromkeys(domains.get(rid, ())):
            images[d] += 1
            holding.setdefault(d, Counter()).update(present)
    out: dict[str, list[TokenCount]] = {}
    n_all = len(tagged.ids)
    for d, cnt in holding.items():
        n_rest = n_all - images[d]
        if n_rest <= 0:
            continue  # a domain holding every image has nothing to stand apart from
        ranked = []
        for (tok, pos), k in cnt.items():
            rest = (total[(tok, pos)] - k) / n_rest
            ratio = (k / images[d]) / rest if rest else float("inf")
            if k >= max(2, min_share * images[d]) and ratio >= lift and tok not in skip:
                ranked.append((-k, -ratio, tok, pos))
        out[d] = [TokenCount(token=t, pos=p, count=-k) for k, _, t, p in sorted(ranked)[:n]]
    return out
