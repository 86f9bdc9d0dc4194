"""NewClassSearch: proposals never repeat a train or test class; WordNet siblings offline."""

from __future__ import annotations

from typing import Any

from atlantis.insight.classes import class_report
from atlantis.insight.new_classes import (
    disambiguate,
    filter_new_classes,
    head_lemma,
    name_key,
    new_class_rules,
    new_class_task,
    resolve_class,
    search_new_classes,
)
from atlantis.insight.schema import DataContext
from atlantis.llm import create_llm
from atlantis.llm.base import LLM

CUB_TRAIN = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "059.California_Gull",
             "060.Glaucous_winged_Gull", "141.Artic_Tern", "142.Black_Tern",
             "158.Bay_breasted_Warbler", "187.American_Three_toed_Woodpecker"]  # fmt: skip
CUB_TEST = ["003.Sooty_Albatross", "143.Caspian_Tern", "188.Pileated_Woodpecker"]
CONTEXT = DataContext(summary="birds")


def test_name_keys_see_through_spelling() -> None:
    assert name_key("001.Black_footed_Albatross") == name_key("black-footed albatrosses")
    assert name_key("Sea Lions") == "sea lion"
    assert name_key("face-smiling") == "face smiling"


def test_filter_drops_train_test_repeats_and_extras() -> None:
    kept, dropped = filter_new_classes(
        ["Wandering Albatross", "laysan albatross", "Caspian terns", "wandering  albatross",
         "", "Snowy Owl", "Bald Eagle"],
        CUB_TRAIN, CUB_TEST, n=2)  # fmt: skip
    assert kept == ["Wandering Albatross", "Snowy Owl"]
    assert dropped == [
        {"name": "laysan albatross", "reason": "a training class"},
        {"name": "Caspian terns", "reason": "a test class"},
        {"name": "wandering albatross", "reason": "a repeat"},
        {"name": "", "reason": "empty name"},
        {"name": "Bald Eagle", "reason": "over the requested number"},
    ]


def test_head_lemmas_of_dataset_style_names() -> None:
    assert head_lemma("002.Laysan_Albatross") == "albatross"
    assert head_lemma("Steller Sea Lions") == "steller_sea_lion"  # WordNet knows compounds
    assert head_lemma("Grey Sea Lions") == "sea_lion"
    assert head_lemma("060.Glaucous_winged_Gull") == "gull"
    assert head_lemma("059.California_Gull") == "gull"  # the last noun, though "gull" is a verb
    assert head_lemma("animal-mammal") == "mammal"
    assert head_lemma("face-smiling") == "face"  # "smiling" is an -ing form
    assert head_lemma("hand-fingers-open") == "finger"  # "open" is mostly an adjective
    assert head_lemma("qwzx-1234") is None


def test_senses_are_chosen_for_the_dataset_world() -> None:
    synsets = disambiguate(["gull", "tern", "albatross", "warbler"])
    assert {s.lexname for s in synsets.values()} == {"noun.animal"}  # not "dupe", "singer"
    assert disambiguate(["warbler"])["warbler"].lexname == "noun.person"  # alone: most frequent


def test_rules_propose_siblings_absent_from_train_and_test() -> None:
    variables = new_class_task(CONTEXT, class_report(CUB_TRAIN), CUB_TEST, 10).variables
    out = new_class_rules(variables)
    assert len(out.new_classes) == variables["n_requested"] == 15
    taken = {name_key(c) for c in CUB_TRAIN + CUB_TEST}
    assert not taken & {name_key(c) for c in out.new_classes}
    assert "wandering albatross" in out.new_classes  # a sibling of the Laysan albatross
    assert "herring gull" in out.new_classes
    assert {"gull", "tern", "albatross"}.isdisjoint(out.new_classes)  # heads are not new
    assert "co-hyponyms" in out.rationale
    assert "8 of 8 class names are kinds of bird" in out.rationale


def test_class_names_resolve_to_wordnet_nouns_or_kinds_of_one() -> None:
    assert resolve_class("Mallard") == ("mallard", False)
    assert resolve_class("001.Black_footed_Albatross") == ("black-footed_albatross", False)
    assert resolve_class("002.Laysan_Albatross") == ("albatross", True)  # a kind of albatross
    assert resolve_class("Grey Sea Lions") == ("sea_lion", True)
    assert resolve_class("pickup trucks") == ("pickup_truck", False)
    # Category paths are not kinds of their last word, and a label that does not end in
    # its head noun is not placed at all.
    for label in ("animal-mammal", "animal-bird", "plant-flower", "award-medal",
                  "face-smiling", "hand-fingers-open", "qwzx-1234"):  # fmt: skip
        assert resolve_class(label) is None, label


def test_car_types_give_other_motor_vehicles() -> None:
    cars = ["sedan", "convertible", "minivan", "coupe", "hatchback", "pickup truck"]
    out = new_class_rules(new_class_task(CONTEXT, class_report(cars), [], 10).variables)
    assert {"jeep", "limousine", "sports car"} <= set(out.new_classes)
    assert "kinds of motor vehicle" in out.rationale


def test_no_evidence_no_new_classes_and_the_rationale_says_why() -> None:
    compound = ["animal-mammal", "animal-bird", "animal-reptile", "food-fruit", "food-sweet",
                "face-smiling", "face-sleepy", "hand-fingers-open", "person-gesture"]  # fmt: skip
    out = new_class_rules(new_class_task(CONTEXT, class_report(compound), [], 10).variables)
    assert out.new_classes == []
    assert out.rationale.startswith("none proposed: only") and "animal-mammal" in out.rationale
    # Names that are WordNet nouns but of no one kind: nothing shows the data's domain.
    mixed = ["arrow", "clothing", "computer", "drink", "emotion", "family", "music", "money",
             "religion", "sport", "time", "zodiac"]  # fmt: skip
    out = new_class_rules(new_class_task(CONTEXT, class_report(mixed), [], 10).variables)
    assert out.new_classes == [] and "no ancestor below the top of WordNet" in out.rationale


def test_rules_on_product_classes() -> None:
    sop = ["bicycle", "cabinet", "chair", "coffee_maker", "lamp", "sofa", "table", "toaster"]
    out = new_class_rules(new_class_task(CONTEXT, class_report(sop), [], 10).variables)
    assert {"bench", "stool", "wardrobe"} <= set(out.new_classes)
    assert not {"chair", "sofa", "table"} & set(out.new_classes)


class Scripted(LLM):
    """A model that proposes a test class, a train class and some good names."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(max_repairs=0)
        self.names = names
        self.seen: list[list[dict[str, str]]] = []

    @property
    def identity(self) -> str:
        return "scripted"

    def generate(self, messages, schema: dict[str, Any], options) -> str:
        import json

        self.seen.append(messages)
        return json.dumps({"new_classes": self.names, "rationale": "test"})


def test_model_answers_are_post_filtered_and_drops_reported() -> None:
    llm = Scripted(["Caspian Tern", "Snowy Owl", "Black Tern", "Bald Eagle", "Atlantic Puffin"])
    new, dropped = search_new_classes(llm, CONTEXT, class_report(CUB_TRAIN), CUB_TEST, n=2)
    assert new.new_classes == ["Snowy Owl", "Bald Eagle"]
    assert [d["reason"] for d in dropped] == ["a test class", "a training class",
                                              "over the requested number"]  # fmt: skip
    user = llm.seen[0][1]["content"]
    assert "Generate 5 new classes" in user  # n + a margin for the post-filter
    assert user.index("<data>") < user.index("Caspian_Tern") < user.index("</data>")


def test_zero_requested_asks_nothing() -> None:
    llm = Scripted(["x"])
    new, dropped = search_new_classes(llm, CONTEXT, class_report(CUB_TRAIN), [], n=0)
    assert new.new_classes == [] and dropped == [] and llm.seen == []
    assert search_new_classes(create_llm("rules"), CONTEXT, class_report(["qwzx"]), [], 3)[0] \
        .new_classes == []  # fmt: skip
