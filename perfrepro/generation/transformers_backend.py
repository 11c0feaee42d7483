"""``llm.backend: transformers``: generate in process with a transformers model directory.

It serves the fine-tuned model (the finetune stage's merged LoRA weights, ``llm.model`` = that
directory) without a conversion step: the weights that were trained are the weights that answer.
Every answer goes through the same `ResponseCache` as the HTTP backends, keyed by the model's
label, an endpoint identity made of the sha256 of its weight files (so retrained weights never
hit stale answers), the messages and the decoding params. The model is loaded only when a request
misses the cache, so a rerun with everything cached loads nothing.

Decoding: greedy when ``llm.temperature`` is 0, else sampling seeded with ``llm.seed`` per request;
at most ``llm.max_tokens`` new tokens; stops at the tokenizer's end-of-sequence token.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from tqdm import tqdm

from perfrepro.config import LLMConfig
from perfrepro.generation.cache import ResponseCache, cache_key, request_fingerprint
from perfrepro.generation.client import ChatRequest, ChatResult, ClientStats, prompt_hash

LABEL_FILE = "perfrepro_model.json"  # {"model": label}, written beside the weights by the finetune stage
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class TransformersBackendError(ValueError):
    """A model directory that cannot serve; the message says what to pass."""


def weights_identity(model_dir: Path) -> str:
    """``transformers:<sha256 of the weight files' names and bytes>``."""
    files = sorted(p for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise TransformersBackendError(f"llm.model: {model_dir} holds no weights (*.safetensors / *.bin)")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"transformers:{digest.hexdigest()}"


def model_label(model_dir: Path) -> str:
    try:
        return json.loads((model_dir / LABEL_FILE).read_text(encoding="utf-8"))["model"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError, TypeError):
        return model_dir.name


def render_chat(tokenizer, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
    """The model's chat format; a tokenizer without a chat template gets a plain layout."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    text = "".join(f"{m['content']}\n\n" for m in messages if m["role"] != "assistant")
    for m in messages:
        if m["role"] == "assistant":
            text += m["content"] + (tokenizer.eos_token or "")
    return text


class TransformersBackend:
    """A `ChatBackend` generating with `AutoModelForCausalLM` in this process, one request at a time."""

    def __init__(self, llm: LLMConfig, cache: ResponseCache, progress: bool = True):
        self.model_dir = Path(llm.model).expanduser()
        if not (self.model_dir / "config.json").is_file():
            raise TransformersBackendError(
                f"llm.backend: transformers needs llm.model to be a transformers model directory "
                f"(config.json + weights, e.g. data/finetune/model/merged); {self.model_dir} is not one"
            )
        self.llm = llm
        self.cache = cache
        self.progress = progress
        self.model_label = model_label(self.model_dir)
        self.endpoint = weights_identity(self.model_dir)
        self.decoding = {"temperature": llm.temperature, "max_tokens": llm.max_tokens, "seed": llm.seed}
        self.stats = ClientStats()
        self._model = None
        self._tokenizer = None

    def key_for(self, messages) -> str:
        return cache_key(request_fingerprint(self.model_label, self.endpoint, messages, self.decoding))

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            self._model = AutoModelForCausalLM.from_pretrained(self.model_dir)
        except Exception as exc:
            raise TransformersBackendError(f"llm.model: cannot load {self.model_dir} ({type(exc).__name__}: {exc})") from None
        self._model.eval()

    def _generate(self, messages) -> tuple[str, int, int]:
        import torch

        self._load()
        prompt = render_chat(self._tokenizer, messages, add_generation_prompt=True)
        encoded = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        sampling = self.llm.temperature > 0
        kwargs = {"do_sample": sampling, "max_new_tokens": self.llm.max_tokens,
                  "pad_token_id": self._tokenizer.pad_token_id or self._tokenizer.eos_token_id}
        if sampling:
            kwargs["temperature"] = self.llm.temperature
            torch.manual_seed(self.llm.seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            output = self._model.generate(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"], **kwargs)
        new = output[0, encoded["input_ids"].shape[1]:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        return text, int(encoded["input_ids"].shape[1]), int(new.shape[0])

    def complete(self, request: ChatRequest) -> ChatResult:
        key = self.key_for(request.messages)
        phash = prompt_hash(request.messages)
        entry = self.cache.get(key)
        if entry is not None:
            self.stats.add(cache_hits=1, succeeded=1)
            return ChatResult(id=request.id, text=entry["text"], prompt_tokens=int(entry.get("prompt_tokens", 0)),
                              completion_tokens=int(entry.get("completion_tokens", 0)),
                              latency_s=float(entry.get("latency_s", 0.0)), cached=True, prompt_hash=phash,
                              cache_key=key)
        started = time.perf_counter()
        self.stats.add(http_attempts=1)
        try:
            text, prompt_tokens, completion_tokens = self._generate(request.messages)
        except TransformersBackendError:
            raise
        except Exception as exc:  # a generation error is this request's failure, not the run's
            self.stats.add(failures=1)
            return ChatResult(id=request.id, text=None, error=f"generation failed: {type(exc).__name__}: {exc}",
                              attempts=1, prompt_hash=phash, cache_key=key)
        latency = round(time.perf_counter() - started, 4)
        self.cache.put(key, {"model": self.model_label, "endpoint": self.endpoint,
                             "messages": [dict(m) for m in request.messages], "params": self.decoding, "text": text,
                             "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "latency_s": latency})
        self.stats.add(succeeded=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return ChatResult(id=request.id, text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=latency, attempts=1, prompt_hash=phash, cache_key=key)

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        results = []
        started = time.perf_counter()
        bar = tqdm(total=len(requests), desc=desc, unit="req", file=sys.stderr, disable=not self.progress,
                   dynamic_ncols=True)
        try:
            for request in requests:
                results.append(self.complete(request))
                bar.set_postfix(cached=sum(r.cached for r in results), failed=sum(not r.ok for r in results),
                                refresh=False)
                bar.update(1)
        finally:
            bar.close()
            self.stats.add(busy_s=time.perf_counter() - started)
        return results
