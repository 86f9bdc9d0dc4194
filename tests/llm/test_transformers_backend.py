"""The ``transformers`` backend with a tiny random Llama and a word-level tokenizer, saved to
a folder and loaded back through the production path (``local_files_only``, offline).

A random model cannot write JSON, so ``run`` must end in ``LLMOutputError`` after its repair
turns: that exercises the real prompt -> chat template -> generate -> decode -> validate
loop. The vocabulary has no braces, so no random answer can ever parse as JSON. The batching
tests spy on ``model.generate`` from several threads and check each row is greedy for its
own prompt by teacher forcing on that prompt alone (no float equality across batch shapes).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from atlantis.errors import ConfigError, MissingDependencyError
from atlantis.llm import create_llm
from atlantis.llm.base import LLMOutputError
from atlantis.llm.store import CallStore
from atlantis.llm.transformers_backend import TransformersChat

from .conftest import TASK_NAME, label_task

WORDS = [
    "system",
    "user",
    "assistant",
    "label",
    "caption",
    "car",
    "red",
    "road",
    "data",
    "the",
    "a",
    "is",
    "of",
    "json",
    "answer",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def _save_tiny_chat_model(
    folder: Path, chat_template: str | None = CHAT_TEMPLATE, init_std: float = 0.02
) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<s>", "</s>", ":", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"chat_template": chat_template} if chat_template else {}
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", **extra,
    )  # fmt: skip
    config = transformers.LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=1, bos_token_id=2, eos_token_id=3, initializer_range=init_std,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # random weights favour <pad>; zero logits keep specials unlikely
        model.lm_head.weight[:4] = 0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a 2-core runner
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llm(tiny_chat_model: Path) -> TransformersChat:
    backend = create_llm(
        "transformers", model=str(tiny_chat_model), local_files_only=True,
        torch_dtype="float32", device="cpu", max_new_tokens=6,
    )  # fmt: skip
    assert isinstance(backend, TransformersChat)
    return backend


MESSAGES = [
    {"role": "system", "content": "the answer is json"},
    {"role": "user", "content": "label the caption : a red car"},
]


def test_generate_returns_new_text_deterministically(llm: TransformersChat) -> None:
    first = llm.generate(MESSAGES, {}, {})
    assert isinstance(first, str) and first
    assert llm.generate(MESSAGES, {}, {}) == first  # greedy decoding
    words = first.split()
    assert len(words) <= 6 and set(words) <= {*WORDS, ":"}  # only the new tokens, decoded
    assert "assistant :" not in first  # the prompt is not echoed
    assert len(llm.generate(MESSAGES, {}, {"max_tokens": 2}).split()) <= 2


def test_sampling_is_seeded(llm: TransformersChat) -> None:
    opts = {"temperature": 1.5, "max_new_tokens": 12}
    assert llm.generate(MESSAGES, {}, opts) == llm.generate(MESSAGES, {}, opts)


def test_run_fails_after_repairs_and_keeps_the_raw_answers(
    llm: TransformersChat, tmp_path: Path
) -> None:
    store = CallStore(tmp_path)
    with pytest.raises(LLMOutputError, match=TASK_NAME) as info:
        llm.run(label_task(), store)
    assert f"{llm.max_repairs + 1} attempt(s)" in str(info.value)
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["ok"] is False and len(record["attempts"]) == llm.max_repairs + 1
    assert all(a["raw"] and "no JSON" in a["error"] for a in record["attempts"])


def test_identity_names_the_model_folder_and_decoding(
    llm: TransformersChat, tiny_chat_model: Path
) -> None:
    identity = llm.identity
    assert identity.startswith("transformers:") and str(tiny_chat_model.resolve()) in identity
    assert "max_new_tokens=6" in identity and "temperature=0.0" in identity
    assert "dtype=float32" in identity
    other = TransformersChat(str(tiny_chat_model), max_new_tokens=7)
    assert other.identity != identity


def test_nothing_loads_until_the_first_generate(tiny_chat_model: Path) -> None:
    backend = TransformersChat(str(tiny_chat_model), local_files_only=True)
    assert backend._model is None and backend.identity


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs model"):
        TransformersChat()
    with pytest.raises(ConfigError, match="max_tokens"):
        TransformersChat(str(tmp_path), max_tokens=5)
    missing = TransformersChat(str(tmp_path / "absent"), local_files_only=True)
    with pytest.raises(ConfigError, match="cannot load"):
        missing.generate(MESSAGES, {}, {})
    with pytest.raises(ConfigError, match="torch_dtype"):
        TransformersChat(str(tmp_path), torch_dtype="float12")


def test_model_without_chat_template_is_refused(tmp_path: Path) -> None:
    folder = _save_tiny_chat_model(tmp_path / "plain", chat_template=None)
    backend = TransformersChat(str(folder), local_files_only=True)
    with pytest.raises(ConfigError, match="no chat template"):
        backend.generate(MESSAGES, {}, {})


def test_missing_transformers_names_the_extra(
    tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    backend = TransformersChat(str(tiny_chat_model))
    with pytest.raises(MissingDependencyError, match=r"atlantis-augment\[hf\]"):
        backend.generate(MESSAGES, {}, {})


# -- chat templates and loading of real model families -----------------------------------------

GEMMA_TEMPLATE = (  # like Gemma's: a system turn is an error
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
QWEN3_TEMPLATE = (  # like Qwen3's: thinking unless enable_thinking is false
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant :"
    "{% if enable_thinking is defined and enable_thinking is false %} the answer is"
    "{% else %} label{% endif %}{% endif %}"
)


def test_a_template_without_system_turn_gets_it_folded_into_the_user_turn(
    tmp_path: Path,
) -> None:
    folder = _save_tiny_chat_model(tmp_path / "gemma", chat_template=GEMMA_TEMPLATE)
    backend = TransformersChat(str(folder), local_files_only=True, max_new_tokens=4)
    prompt = backend.render(MESSAGES)
    assert prompt == "user : the answer is json\n\nlabel the caption : a red car\nassistant :"
    assert backend.generate(MESSAGES, {}, {})  # the whole path works
    with pytest.raises(Exception, match="System role not supported"):
        backend._apply(MESSAGES)  # the template really refuses it


def test_thinking_is_switched_off_where_the_template_has_the_switch(tmp_path: Path) -> None:
    folder = _save_tiny_chat_model(tmp_path / "qwen3", chat_template=QWEN3_TEMPLATE)
    backend = TransformersChat(str(folder), local_files_only=True, max_new_tokens=4)
    assert backend.render(MESSAGES).endswith("assistant : the answer is")
    assert backend.generate(MESSAGES, {}, {})


def test_weights_load_in_the_requested_dtype_on_the_device(
    tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    seen: list[dict] = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    backend = TransformersChat(str(tiny_chat_model), local_files_only=True,
                               torch_dtype="bfloat16", device="cpu", max_new_tokens=3)  # fmt: skip
    assert backend.generate(MESSAGES, {}, {})
    (kwargs,) = seen
    assert kwargs["device_map"] == "cpu" and torch.bfloat16 in kwargs.values()
    assert backend._model.dtype == torch.bfloat16
    assert {p.device.type for p in backend._model.parameters()} == {"cpu"}


def test_a_thinking_block_is_cut_from_the_answer(
    llm: TransformersChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.load()
    monkeypatch.setattr(llm._tokenizer, "decode", lambda *a, **k: '<think>hmm</think> {"a": 1}')
    assert llm.generate(MESSAGES, {}, {}) == '{"a": 1}'


# -- dynamic batching of concurrent calls --------------------------------------------------------

USER_TEXTS = [
    "label the caption : a red car",
    "the road",
    "a car is red of the data",
    "caption the json answer",
    "red",
    "the data of a road is a car of the caption",
]


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "the answer is json"}, {"role": "user", "content": text}]


class _GeneratePool:
    """A spy on ``model.generate`` (rows, inputs and outputs of every call) whose first call
    waits until all ``expected`` requests are queued or in it, so later calls can batch."""

    def __init__(self, backend: TransformersChat, expected: int, fail: bool = False) -> None:
        self.backend, self.expected, self.fail = backend, expected, fail
        self.calls: list[tuple[Any, Any, Any]] = []  # (input_ids, attention_mask, output)
        self.original = backend._model.generate

    def __call__(self, **kwargs: Any) -> Any:
        ids = kwargs["input_ids"]
        if not self.calls:
            deadline = time.monotonic() + 10
            while len(self.backend._pending) + len(ids) < self.expected:
                assert time.monotonic() < deadline, "the other requests never queued"
                time.sleep(0.005)
        self.calls.append((ids, kwargs["attention_mask"], None))
        if self.fail:
            raise RuntimeError(f"out of memory in a batch of {len(ids)}")
        out = self.original(**kwargs)
        self.calls[-1] = (ids, kwargs["attention_mask"], out)
        return out

    @property
    def rows(self) -> list[int]:
        return [len(ids) for ids, _, _ in self.calls]


def _in_threads(backend: TransformersChat, texts: list[str], options: dict) -> list[Any]:
    """``generate`` for each text from its own thread: each answer, or the exception raised."""
    results: list[Any] = [None] * len(texts)

    def call(i: int) -> None:
        try:
            results[i] = backend.generate(_messages(texts[i]), {}, options)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


@pytest.fixture(scope="module")
def varied_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights 10x the default scale: answers depend on the prompt (at 0.02 most prompts get
    the same few words), so a row given another row's context would be caught."""
    return _save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama-varied"), init_std=0.2)


@pytest.fixture
def batched(varied_chat_model: Path) -> TransformersChat:
    backend = TransformersChat(str(varied_chat_model), local_files_only=True, torch_dtype="float32",
                               device="cpu", max_new_tokens=8, batch_size=4)  # fmt: skip
    backend.load()
    return backend


def test_concurrent_greedy_calls_share_generate_and_each_gets_its_own_greedy_answer(
    batched: TransformersChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    spy = _GeneratePool(batched, expected=len(USER_TEXTS))
    monkeypatch.setattr(batched._model, "generate", spy)
    answers = _in_threads(batched, USER_TEXTS, {})
    assert all(isinstance(a, str) for a in answers), answers
    assert sum(spy.rows) == len(USER_TEXTS) and len(spy.calls) < len(USER_TEXTS)
    assert max(spy.rows) > 1 and max(spy.rows) <= batched.batch_size

    tok, model = batched._tokenizer, batched._model
    rows: dict[tuple[int, ...], list[int]] = {}  # prompt tokens -> the new tokens of its row
    for ids, mask, out in spy.calls:
        for r in range(len(ids)):
            prompt = ids[r][mask[r].bool()].tolist()
            assert mask[r, : len(ids[r]) - len(prompt)].sum() == 0  # the pads are on the left
            rows[tuple(prompt)] = out[r, ids.shape[1] :].tolist()
    for text, answer in zip(USER_TEXTS, answers, strict=True):
        prompt = tok(batched.render(_messages(text)), add_special_tokens=False)["input_ids"]
        new = rows[tuple(prompt)]  # KeyError: no batch row held this prompt
        assert answer == tok.decode(new, skip_special_tokens=True).strip()  # its own row
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id) + 1]
        # Greedy along the answer, checked on the prompt alone: each chosen token's logit is
        # (within float noise of another shape) that step's maximum.
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + new])).logits[0]
        steps = logits[len(prompt) - 1 : len(prompt) - 1 + len(new)]
        chosen = steps[torch.arange(len(new)), torch.tensor(new)]
        assert torch.all(steps.max(dim=1).values - chosen <= 1e-3), text


def test_an_error_in_a_batch_reaches_every_caller_and_the_backend_recovers(
    batched: TransformersChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _GeneratePool(batched, expected=4, fail=True)
    monkeypatch.setattr(batched._model, "generate", spy)
    results = _in_threads(batched, USER_TEXTS[:4], {})
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    assert max(spy.rows) > 1  # one exception answered several callers
    assert not batched._pending and not batched._busy
    spy.fail = False
    assert all(isinstance(a, str) and a for a in _in_threads(batched, USER_TEXTS[:3], {}))


def test_sampling_calls_run_alone_and_each_is_reproducible_from_the_seed(
    batched: TransformersChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = {"temperature": 1.5, "max_new_tokens": 12}
    alone = batched.generate(_messages(USER_TEXTS[0]), {}, opts)
    spy = _GeneratePool(batched, expected=4)
    monkeypatch.setattr(batched._model, "generate", spy)
    answers = _in_threads(batched, [USER_TEXTS[0]] * 4, opts)
    assert spy.rows == [1, 1, 1, 1]
    assert answers == [alone] * 4  # the seed alone decides, whatever ran beside it


def test_batch_size_is_validated_and_left_out_of_the_identity(tiny_chat_model: Path) -> None:
    for bad in (0, -2, 1.5, "4", True):
        with pytest.raises(ConfigError, match="batch_size"):
            TransformersChat(str(tiny_chat_model), batch_size=bad)
    one = TransformersChat(str(tiny_chat_model), batch_size=1)
    assert one.identity == TransformersChat(str(tiny_chat_model), batch_size=16).identity
    assert TransformersChat(str(tiny_chat_model)).batch_size == 8
