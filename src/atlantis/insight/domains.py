"""DomainInfer (supplement C.1.3): the key semantic domains the images vary along.

A domain is an axis of variation other than the class: an activity (CUB: flying, sitting,
swimming), a scene, a rendering style, a body type. The LLM gets the data context, the top
nouns and verbs, and the domain labels the dataset provides (if any), and names
``n_domains`` domains with keywords that captions of each domain would contain; the
assignment step (``atlantis.insight.assign``) then places every training image.

The ``rules`` handler (no model) decides in this order: provided domain labels (the
manifest's ``domain`` column) are the domains; else frequent activity verbs (WordNet
lexicographer files ``verb.motion``, ``verb.contact``...); else frequent scene nouns
(locations, natural objects, weather, plants, and rooms / buildings / roads); else the most
frequent nouns that are not class words.
"""

from __future__ import annotations

from typing import Any

from atlantis.insight.context import MAX_DOMAINS, frequency_summary
from atlantis.insight.schema import DataContext, Domain, DomainSet, FrequencyTable
from atlantis.insight.text import normalise_name
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "dig.domain_infer"
TEMPLATE = "dig/domain_infer"
PROVIDED = "provided domain labels"
MAX_CLASS_WORDS = 200

ACTIVITY_LEXNAMES = frozenset({"verb.motion", "verb.contact", "verb.consumption", "verb.body",
                               "verb.competition", "verb.perception"})  # fmt: skip
NATURAL_SCENE_LEXNAMES = frozenset({"noun.location", "noun.object", "noun.phenomenon",
                                    "noun.plant", "noun.substance"})  # fmt: skip
#: Hypernyms that make a noun a place rather than a thing (kitchen < room, street < way,
#: garage < building, garden < tract, forest < vegetation).
SCENE_ANCHORS = frozenset({"room", "building", "area", "way", "facility", "establishment", "tract", "region",
                           "vegetation", "land", "geological_formation", "body_of_water"})  # fmt: skip


def domain_task(
    context: DataContext,
    table: FrequencyTable,
    provided: dict[str, int],
    class_names: list[str],
    n_domains: int = 3,
) -> LLMTask:
    words = sorted({w for c in class_names for w in normalise_name(c).split()})[:MAX_CLASS_WORDS]
    variables = {
        "n_domains": n_domains,
        "context": context.model_dump(),
        "frequency": frequency_summary(table),
        "provided_domains": dict(list(provided.items())[:MAX_DOMAINS]),
        "class_words": words,
    }
    return LLMTask(name=TASK, template=TEMPLATE, variables=variables, schema=DomainSet)


def infer_domains(
    llm: LLM,
    context: DataContext,
    table: FrequencyTable,
    provided: dict[str, int],
    class_names: list[str],
    n_domains: int = 3,
    store: CallStore | None = None,
) -> DomainSet:
    """DomainInfer; the answer is tidied (names stripped and unique, keywords lower case)."""
    task = domain_task(context, table, provided, class_names, n_domains)
    return clean_domains(llm.run(task, store))  # type: ignore[arg-type]


def clean_domains(ds: DomainSet) -> DomainSet:
    seen: set[str] = set()
    domains = []
    for d in ds.domains:
        name = " ".join(d.name.split())
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        keywords = list(dict.fromkeys(k.strip().lower() for k in d.keywords if k.strip()))
        domains.append(Domain(name=name, description=d.description.strip(), keywords=keywords))
    return DomainSet(criterion=ds.criterion.strip() or "unspecified", domains=domains)


@rule(TASK)
def domain_rules(variables: dict[str, Any]) -> DomainSet:
    """Provided labels, else activity verbs, else scene nouns, else frequent nouns."""
    n = int(variables["n_domains"])
    if provided := variables.get("provided_domains"):
        return DomainSet(criterion=PROVIDED, domains=[
            Domain(name=d, description=f"images labelled '{d}' in the dataset ({c} images)",
                   keywords=[d.lower()] if d.isalpha() else [])
            for d, c in provided.items()])  # fmt: skip
    freq = variables["frequency"]
    floor = max(2, 0.01 * freq["n_captions"])  # ignore tokens too rare to make a domain
    class_words = set(variables.get("class_words", []))
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    verbs = [(v, c) for v, c in freq["top_verbs"]
             if c >= floor and wn.lexname(v, "v") in ACTIVITY_LEXNAMES]  # fmt: skip
    if len(verbs) >= min(n, 2):
        return DomainSet(criterion="activity", domains=[
            Domain(name=gerund(v), description=f"images whose captions say the subject is "
                   f"'{gerund(v)}' ({c} mentions)", keywords=[v]) for v, c in verbs[:n]])  # fmt: skip
    nouns = [(t, c) for t, c in freq["top_nouns"] if c >= floor and t not in class_words]
    scenes = [(t, c) for t, c in nouns if is_scene(t)]
    if len(scenes) >= min(n, 2):
        return DomainSet(criterion="scene", domains=[
            Domain(name=t, description=f"images set in or with '{t}' ({c} mentions)",
                   keywords=[t]) for t, c in scenes[:n]])  # fmt: skip
    if nouns:
        return DomainSet(criterion="frequent caption nouns", domains=[
            Domain(name=t, description=f"images whose captions mention '{t}' ({c} mentions)",
                   keywords=[t]) for t, c in nouns[:n]])  # fmt: skip
    return DomainSet(criterion="none found", domains=[
        Domain(name="all images", description="no domain signal in the captions")])  # fmt: skip


def is_scene(noun: str) -> bool:
    """Is the noun's main sense a place, natural setting or weather (not a thing)?"""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    synsets = wn.synsets(noun.replace(" ", "_"), "n")
    if not synsets:
        return False
    first = synsets[0]
    if first.lexname in NATURAL_SCENE_LEXNAMES:
        return True
    frontier, seen = [first], set()
    for _ in range(8):  # hypernym closure, a few levels up is enough
        frontier = [h for s in frontier for h in wn.hypernyms(s) if h.offset not in seen]
        seen.update(s.offset for s in frontier)
        if any(w.lower() in SCENE_ANCHORS for s in frontier for w in s.words):
            return True
    return False


def gerund(verb: str) -> str:
    """``fly`` -> ``flying``, ``sit`` -> ``sitting``, ``ride`` -> ``riding``, ``lie`` -> ``lying``.

    English spelling rules, good for common verbs; the domain *name* only (keywords keep
    the lemma, which is what captions are matched on).
    """
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    vowels = "aeiou"
    if (len(verb) >= 3 and verb[-1] not in vowels + "wxy" and verb[-2] in vowels
            and verb[-3] not in vowels and sum(ch in vowels for ch in verb) == 1):  # fmt: skip
        return verb + verb[-1] + "ing"  # one-syllable consonant-vowel-consonant: sit, swim
    return verb + "ing"
