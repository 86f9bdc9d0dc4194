"""``transformers``: a local chat model run in-process with Hugging Face transformers.

For machines without an API: any causal LM with a chat template (Qwen, Llama, Mistral,
Phi, ...) given as a hub id or a local folder. ``local_files_only=True`` forbids network
access (air-gapped machines). The model loads on the first ``generate``, so building the
backend (e.g. to print its identity or check a config) costs nothing.

Decoding is greedy by default (``temperature=0``): the same prompt gives the same answer,
which is what the call store's caching assumes. There is no constrained decoding here;
``LLM.run`` validates the answer and sends repair turns like for any backend.

The weights load straight into the requested dtype on the target device (``device_map``;
no fp32 copy on the CPU first; with no ``torch_dtype`` a GPU gets the checkpoint's own
dtype). Chat templates differ: one that rejects a system turn (Gemma) gets the system
prompt folded into the first user turn, and a template with a thinking switch (Qwen3) is
rendered with ``enable_thinking=False`` (templates without one ignore it); any
``<think>...</think>`` block is cut from the answer.

**Dynamic batching** (``batch_size``, default 8): the planner writes descriptions from up to
``plan.llm_concurrency`` threads at once, and on one GPU those calls would otherwise queue
for the model one prompt at a time, leaving it mostly idle. Each ``generate`` queues its
request (prompt and generation settings); whichever thread gets the model next (the leader,
no timers) takes up to ``batch_size`` waiting requests with the *same* settings, its own
first, tokenizes them together with left padding (the attention mask hides the pads), runs
one ``model.generate``, decodes each row's new tokens and hands every request its answer, or
the batch's exception; a thread whose request another leader answered just returns. Greedy
decoding gives each prompt the continuation it gets alone (float rounding in another batch
shape aside). Sampling requests (``temperature > 0``) always run alone, right after
``torch.manual_seed(seed)``, so each answer is reproducible from the seed whatever else was
in flight.

``transformers`` is an optional extra (``atlantis-augment[hf]``).
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlantis.errors import ConfigError, MissingDependencyError
from atlantis.llm.base import LLM

_OPTIONS = (
    "model, local_files_only, torch_dtype, device, max_new_tokens, temperature, "
    "revision, seed, trust_remote_code, max_repairs, batch_size"
)


@dataclass
class _Request:
    """One ``generate`` call waiting for the model: its prompt, settings and outcome."""

    prompt: str
    gen: dict[str, Any]
    sampling: bool
    done: bool = False
    answer: str = ""
    error: BaseException | None = None

    def batches_with(self, other: _Request) -> bool:
        return not self.sampling and not other.sampling and self.gen == other.gen


class TransformersChat(LLM):
    """A local causal LM prompted through its tokenizer's chat template."""

    def __init__(
        self,
        model: str | None = None,
        *,
        local_files_only: bool = False,
        torch_dtype: str | None = None,
        device: str | None = None,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        revision: str | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        max_repairs: int = 2,
        batch_size: int = 8,
        **unknown: Any,
    ) -> None:
        super().__init__(max_repairs=max_repairs)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the transformers LLM backend: "
                f"{', '.join(sorted(unknown))}; valid: {_OPTIONS}"
            )
        if not model:
            raise ConfigError(
                "the transformers LLM backend needs model=<hub id or local folder>, "
                "e.g. model=Qwen/Qwen2.5-1.5B-Instruct"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"batch_size must be an integer >= 1 (prompts per model.generate; 1: no "
                f"batching), got {batch_size!r}"
            )
        self.model_name = model
        self.local_files_only = local_files_only
        self.torch_dtype = torch_dtype
        self._dtype = _resolve_dtype(torch_dtype)
        self.device = device
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.revision = revision
        self.seed = seed
        self.trust_remote_code = trust_remote_code
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # one load
        # The queue of requests and who runs the model: one model.generate at a time.
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._busy = False

    @property
    def is_local(self) -> bool:
        return Path(self.model_name).is_dir()

    @property
    def identity(self) -> str:
        if self.is_local:
            # The content digest, not just the path: a model retrained in place must not be
            # answered from the call store with the old model's outputs.
            from atlantis.embed.cache import weights_fingerprint

            weights = f"{Path(self.model_name).resolve()}#{weights_fingerprint(self.model_name)}"
        else:
            weights = f"{self.model_name}@{self.revision or 'main'}"
        sampling = f" seed={self.seed}" if self.temperature > 0 else ""
        # batch_size is left out: greedy rows get the continuation they get alone, and
        # sampling never batches, so it changes speed, not answers (like device here).
        return (
            f"transformers:{weights} dtype={self.torch_dtype or 'default'} "
            f"max_new_tokens={self.max_new_tokens} temperature={self.temperature}{sampling}"
        )

    def __repr__(self) -> str:
        return f"TransformersChat({self.model_name!r})"

    def load(self) -> None:
        """Load tokenizer and model (once); ``generate`` calls this itself."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        tf = _import_transformers()
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {
            "local_files_only": self.local_files_only,
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
        }
        dtype = self._dtype
        if dtype is None and str(device).startswith("cuda"):
            dtype = "auto"  # the checkpoint's dtype (bf16/fp16), not an fp32 upcast
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(self.model_name, **kwargs)
            model = tf.AutoModelForCausalLM.from_pretrained(
                self.model_name, **kwargs, **_dtype_kwargs(tf, dtype), device_map=device
            )
        except OSError as exc:
            where = "folder" if self.is_local else "hub id"
            raise ConfigError(
                f"cannot load the transformers chat model {where} {self.model_name!r}: {exc}"
            ) from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{self.model_name!r} has no chat template; use an instruction-tuned (chat) "
                "model, whose tokenizer says how to lay out system/user/assistant turns"
            )
        # Batches pad on the left, so every row's new tokens start at the same column; a
        # single prompt is never padded, so neither setting changes its tokens.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._model = model.eval()

    def generate(self, messages, schema, options) -> str:
        self.load()
        tok = self._tokenizer
        temperature = float(options.get("temperature", self.temperature))
        gen: dict[str, Any] = {
            # Tasks are backend-neutral and say "max_tokens" (the OpenAI name); both work.
            "max_new_tokens": int(
                options.get("max_new_tokens", options.get("max_tokens", self.max_new_tokens))
            ),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature)
        else:  # greedy; clear the checkpoint's sampling defaults so they do not warn or apply
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        request = _Request(self.render(messages), gen, sampling=temperature > 0)
        with self._cond:
            self._pending.append(request)
            while self._busy and not request.done:
                self._cond.wait()
            if not request.done:  # the model is free: lead a batch
                self._busy = True
                batch = self._take_batch(request)
        if not request.done:
            try:
                answers = self._run(batch)
            except BaseException as exc:  # every caller of the batch gets it
                for r in batch:
                    r.error = exc
            else:
                for r, answer in zip(batch, answers, strict=True):
                    r.answer = answer
            with self._cond:
                for r in batch:
                    r.done = True
                self._busy = False
                self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.answer

    def _take_batch(self, leader: _Request) -> list[_Request]:
        """The leader and up to ``batch_size - 1`` waiting requests it can share a generate
        with, oldest first, taken off the queue (called holding ``_cond``)."""
        batch = [leader]
        if self._tokenizer.pad_token is not None:  # no pad token: nothing to pad with
            for r in self._pending:
                if len(batch) >= self.batch_size:
                    break
                if r is not leader and leader.batches_with(r):
                    batch.append(r)
        self._pending = [r for r in self._pending if all(r is not b for b in batch)]
        return batch

    def _run(self, batch: list[_Request]) -> list[str]:
        """One ``model.generate`` over the batch's prompts; each row's new text."""
        import torch

        tok, model = self._tokenizer, self._model
        inputs = tok([r.prompt for r in batch], return_tensors="pt", padding=True,
                     add_special_tokens=False).to(model.device)  # fmt: skip
        with torch.inference_mode():
            if batch[0].sampling:  # always a batch of one (see _Request.batches_with)
                torch.manual_seed(self.seed)
            out = model.generate(**inputs, **batch[0].gen)
        start = inputs["input_ids"].shape[1]
        texts = [tok.decode(row[start:], skip_special_tokens=True) for row in out]
        return [re.sub(r"<think>.*?(</think>|$)", "", t, flags=re.S).strip() for t in texts]

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: the chat template with thinking off, the system turn folded into
        the first user turn where the template refuses a system role."""
        self.load()
        # Render to text, then tokenize: the return type of tokenize=True differs across
        # transformers versions. The template already holds any BOS token.
        try:
            return self._apply(messages)
        except Exception as exc:  # jinja2's TemplateError, raised by the template itself
            if not any(m["role"] == "system" for m in messages):
                raise
            try:
                return self._apply(fold_system(messages))
            except Exception:
                raise exc from None

    def _apply(self, messages: list[dict[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, enable_thinking=False
        )


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system turns' text put at the head of the first user turn (Gemma's convention)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def _import_transformers() -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise MissingDependencyError("transformers", "hf", "the transformers LLM backend") from None


def _resolve_dtype(name: str | None) -> Any:
    """``None``, ``"auto"`` or a ``torch.dtype``; a bad name fails at configuration time."""
    if name is None or name == "auto":
        return name
    import torch

    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"unknown torch_dtype {name!r}; use auto, float32, bfloat16 or float16")
    return value


def _dtype_kwargs(tf: Any, dtype: Any) -> dict[str, Any]:
    """``dtype=`` for transformers >= 4.56, ``torch_dtype=`` before (same values)."""
    if dtype is None:
        return {}
    major, minor = (int(x) for x in tf.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}
