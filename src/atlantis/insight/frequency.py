"""FrequencyEval (supplement C.1.1): the informative nouns and verbs of all captions.

Counts are occurrences of lemmatised tokens over every caption of every training image,
overall (top ``top_n``, 50 by default as in the paper) and per class (top ``per_class_n``).
The per-record token lists are kept too (``TaggedRecords``): domain assignment matches
them against domain keywords, so the captions are tagged once per stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
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
