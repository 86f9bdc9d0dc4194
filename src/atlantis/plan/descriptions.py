"""Target-image descriptions: per (class, domain) cell, N distinct texts (supplement Figure 2).

The writer gets the objective ``O_aug``, the class's reference ``D_ref`` and, per cell, the
domain, why the cell is planned and how many texts to write. Calls are batched per class
(at most ``per_call`` texts each). Every text is checked before use: one caption-like
sentence (whitespace collapsed, numbering and quotes stripped, at most ``MAX_CHARS``) that
names the class (all words of its name, plurals allowed), and no repeat of any text of the
class (compared case- and punctuation-insensitively). A short or partly rejected answer is
topped up by asking again for the missing texts only, with the accepted ones listed to
avoid; a call that adds nothing counts as a failure, and ``MAX_FAILED_CALLS`` of them raise
``LLMOutputError`` naming the class.

The writer is given the words of the data, and asked to use them: the class's name in
plain words (``display_name``), its distinctive caption tokens (``class_tokens``), the word
the captions use for every image (``subject_word``, e.g. "emoji" or "bird"), and per cell
the domain as the data names it and the caption tokens distinctive of that domain
(``domain_words``, from the insight's ``domain_tokens``). Those are the words that tell a
class and a domain apart, for a text-to-image model and for a text-retrieval query alike.

The ``rules`` handler (no model) composes "{a class subject | a photo of a class}{domain
phrase}[, domain words], with {three class tokens}, {scale}, {viewpoint}, {lighting},
{background}": the domain phrase follows what the domains vary along (an activity follows
the name, "a Laysan Albatross swimming"; a scene is "in the harbour"; a style "in
watercolor style"; any other domain, e.g. a provided label, is named as the data names it,
", google"), the class tokens rotate through a window of three, and the attributes run
through a fixed scrambled enumeration (400 distinct combinations, then numbered variants)
starting at the cell's ``start`` index, so texts never repeat, even across feedback rounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from atlantis.insight.schema import Domain
from atlantis.insight.text import normalise_name
from atlantis.llm.base import LLM, LLMOutputError, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "aps.descriptions"
TEMPLATE = "aps/descriptions"
MAX_CHARS = 400
MAX_AVOID = 12  # accepted texts of a cell shown back to the writer, newest last
MAX_FAILED_CALLS = 3
Cell = str | None

SCALES = ("close-up", "at medium distance", "small in a wide shot", "filling the frame")
VIEWS = ("seen from the front", "seen from the side", "seen from above",
         "seen from a low angle", "in three-quarter view")  # fmt: skip
LIGHTS = ("in soft daylight", "in bright sunlight", "in overcast light", "at golden hour",
          "in dim evening light")  # fmt: skip
BACKGROUNDS = ("against a plain background", "against a blurred background",
               "in a cluttered setting", "with a distant horizon")  # fmt: skip


class CellDescriptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | None = None
    descriptions: list[str]


class DescriptionBatch(BaseModel):
    """The writer's answer for one class: texts per requested cell."""

    model_config = ConfigDict(extra="forbid")

    cells: list[CellDescriptions]


def display_name(label: str) -> str:
    """A class label as words for a prompt: ``001.Black_footed_Albatross`` -> ``Black footed
    Albatross``, ``face-smiling`` -> ``face smiling`` (case kept, numbering dropped)."""
    text = re.sub(r"^\s*\d+[.)_\s]+", "", label)
    return " ".join(re.sub(r"[_\-]+", " ", text).split()) or label


def article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def describe_class(
    llm: LLM,
    *,
    class_name: str,
    is_new_class: bool,
    reference: str,
    tokens: Sequence[str],
    requests: Mapping[Cell, int],
    why: Mapping[Cell, str],
    existing: Mapping[Cell, list[str]],
    objective: dict[str, Any],
    criterion: str,
    domains: Mapping[str, Domain],
    per_call: int = 20,
    store: CallStore | None = None,
    subject: str = "",
    domain_words: Mapping[str, Sequence[str]] | None = None,
) -> dict[Cell, list[str]]:
    """``requests[cell]`` new texts per cell of one class (see the module docstring)."""
    done: dict[Cell, list[str]] = {d: [] for d in requests}
    seen = {_key(t) for texts in existing.values() for t in texts}
    failures = 0
    while pending := {d: n - len(done[d]) for d, n in requests.items() if n > len(done[d])}:
        chunk: dict[Cell, int] = {}  # what this call asks for: at most per_call texts
        room = per_call
        for d, n in pending.items():
            if take := min(n, room):
                chunk[d], room = take, room - take
        cells = [{
            "domain": d,
            "domain_description": domains[d].description if d in domains else "",
            "domain_keywords": list(domains[d].keywords) if d in domains else [],
            "domain_words": list((domain_words or {}).get(d, [])) if d else [],
            "n": n,
            "start": len(existing.get(d, [])) + len(done[d]),
            "why": why.get(d, ""),
            "avoid": [*existing.get(d, []), *done[d]][-MAX_AVOID:],
        } for d, n in chunk.items()]  # fmt: skip
        variables = {"objective": objective, "domain_criterion": criterion,
                     "class_name": class_name, "display_name": display_name(class_name),
                     "is_new_class": is_new_class, "reference": reference,
                     "class_tokens": list(tokens), "subject_word": subject, "cells": cells,
                     "n_total": sum(chunk.values())}  # fmt: skip
        if failures:
            variables["retry"] = failures  # a new request: the stored answer is not reused
        task = LLMTask(name=TASK, template=TEMPLATE, variables=variables, schema=DescriptionBatch)
        answer: DescriptionBatch = llm.run(task, store)  # type: ignore[assignment]
        added = 0
        for d, texts in _match(answer, chunk).items():
            new = accept(texts, class_name, seen, limit=chunk[d])
            done[d] += new
            added += len(new)
        if added == 0:
            failures += 1
            if failures >= MAX_FAILED_CALLS:
                raise LLMOutputError(
                    f"{TASK}: the model ({llm.identity}) wrote no usable new description for "
                    f"class {class_name!r} in {failures} calls (cells still missing: "
                    f"{pending}); each must be one sentence naming the class, no repeats"
                )
    return done


def accept(
    texts: Sequence[str], class_name: str, seen: set[str], limit: int | None = None
) -> list[str]:
    """The first ``limit`` usable texts, in order; ``seen`` (normalised keys) is updated."""
    need = {_stem(w) for w in normalise_name(class_name).split()}
    out: list[str] = []
    for raw in texts:
        if limit is not None and len(out) >= limit:
            break
        text = re.sub(r"^\s*(?:\d+\s*[:.)]|[-*•])\s*", "", " ".join(str(raw).split()))
        text = text.strip().strip("\"'“”").strip()
        key = _key(text)
        if not text or len(text) > MAX_CHARS or key in seen:
            continue
        if not need <= {_stem(w) for w in key.split()}:
            continue  # the generator must be told which class to draw
        seen.add(key)
        out.append(text)
    return out


def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _stem(word: str) -> str:
    """Plural to singular, roughly: enough to see "albatrosses" name an albatross."""
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


_MISSING = object()


def _match(answer: DescriptionBatch, chunk: Mapping[Cell, int]) -> dict[Cell, list[str]]:
    """Answer cells -> requested cells by domain name; a lone cell answers a lone request."""
    keys = {_domain_key(d): d for d in chunk}
    out: dict[Cell, list[str]] = {}
    for cell in answer.cells:
        d = keys.get(_domain_key(cell.domain), _MISSING)
        if d is _MISSING and len(chunk) == 1 and len(answer.cells) == 1:
            d = next(iter(chunk))
        if d is not _MISSING:
            out.setdefault(d, []).extend(cell.descriptions)  # type: ignore[arg-type]
    return out


def _domain_key(domain: str | None) -> str:
    key = normalise_name(domain or "")
    return "" if key in ("any", "none", "null", "all") else key


# -- the rules handler ------------------------------------------------------------------------


def domain_phrase(domain: str | None, criterion: str) -> str:
    """How a domain reads after the class name, by what the domains vary along; the domain
    is named as the data names it, with no template word for "domain"."""
    if not domain:
        return ""
    c = criterion.lower()
    if c.startswith("activit"):
        return f" {domain}"  # "a Laysan Albatross swimming"
    if any(w in c for w in ("scene", "background", "setting", "environment", "place")):
        return f" in the {domain}"  # "a Laysan Albatross in the harbour"
    if "style" in c:
        return f" in {domain} style"  # "in watercolor style": the criterion's own word
    return f", {domain}"  # a provided label or any other axis: "a face smiling emoji, google"


def subject_head(name: str, subject: str = "") -> str:
    """The opening of a rules text: "a face smiling emoji" when the captions name what
    every image is, else "a photo of a Laysan Albatross"."""
    words = set(name.lower().split())
    if subject and subject.lower() not in words:
        return f"{article(name)} {name} {subject}"
    return f"a photo of {article(name)} {name}"


def compose(head: str, phrase: str, i: int, details: Sequence[str],
            domain_words: Sequence[str] = ()) -> str:  # fmt: skip
    """The ``i``-th rules description of a cell; distinct for every ``i``."""
    j = (i * 161) % 400  # 161 is prime to 400: a bijection; any 10 in a row vary every attribute
    parts = [f"{head}{phrase}", *domain_words]
    if details:
        window = [details[(i + k) % len(details)] for k in range(min(3, len(details)))]
        parts.append("with " + _and(window))
    parts += [SCALES[j // 100], VIEWS[j % 5], LIGHTS[(j // 5) % 5], BACKGROUNDS[(j // 25) % 4]]
    if i >= 400:
        parts.append(f"variant {i // 400 + 1}")
    return ", ".join(parts)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


@rule(TASK)
def descriptions_rules(v: dict[str, Any]) -> DescriptionBatch:
    """Template descriptions (no model): the data's words, enumerated variations."""
    head = subject_head(v["display_name"], v.get("subject_word", ""))
    cells = [CellDescriptions(domain=c["domain"], descriptions=[
        compose(head, domain_phrase(c["domain"], v["domain_criterion"]), c["start"] + i,
                v["class_tokens"], c.get("domain_words", [])) for i in range(c["n"])])
        for c in v["cells"]]  # fmt: skip
    return DescriptionBatch(cells=cells)
