"""In-process llama.cpp on a GGUF file, with JSON-schema constrained decoding.

A loaded model is shared by every :class:`LocalLM` on the same file and runs on its own single
worker thread: llama.cpp contexts are not thread-safe, and queueing on a dedicated thread keeps the
event loop's default executor free for other work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse._canonical import canonical_str
from dse.errors import LMError
from dse.lm._local_scoring import ScoringTimeout, chat_prompt_tokens, score_continuations
from dse.lm._types import Completion, LMRequest, Usage

DEFAULT_N_CTX = 4096
DEFAULT_SEED = 1234
_GRAMMAR_MAX_LENGTH = 64
_GRAMMAR_CACHE_SIZE = 64


@dataclass
class _LoadedModel:
    """One llama.cpp model plus the single thread allowed to touch it."""

    llama: Any
    executor: ThreadPoolExecutor
    lock: threading.Lock = field(default_factory=threading.Lock)
    deadline: float | None = None
    timed_out: bool = False

    def past_deadline(self, _input_ids: Any, _logits: Any) -> bool:
        """Stopping criterion: ends generation once the call's time budget is spent."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            return True
        return False


_MODELS: dict[tuple[str, int, int, int], _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise LMError(
            f"local LM needs llama-cpp-python (pip install llama-cpp-python): {exc}"
        ) from None
    return llama_cpp


def default_threads() -> tuple[int, int]:
    """Generation and prompt threads: half the cores for generation, all for prompts.

    The defaults of llama.cpp's own server. Generation decodes one token at a time, so its
    threads meet at a barrier per layer; on a busy machine a thread per core makes each one
    wait for a descheduled peer (measured on two shared cores: 2.0 s a token against 0.19 s).
    """
    cores = os.cpu_count() or 1
    return max(cores // 2, 1), cores


def _load(path: Path, n_ctx: int, n_threads: int, n_threads_batch: int) -> _LoadedModel:
    """Load once per (file, context size, threads) per process; later callers share it."""
    key = (str(path), n_ctx, n_threads, n_threads_batch)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        llama_cpp = _import_llama()
        try:
            with _safe_model_params(llama_cpp):
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads_batch,
                    seed=DEFAULT_SEED,
                    verbose=False,
                )
        except Exception as exc:
            raise LMError(f"local LM: cannot load {path}: {exc}", path=str(path)) from None
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dse-llama-{path.name}")
        loaded = _LoadedModel(llama=llama, executor=executor)
        _install_deadline(loaded, llama_cpp)
        _MODELS[key] = loaded
        return loaded


def _has_amx(llama_cpp: Any) -> bool:
    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


@contextlib.contextmanager
def _safe_model_params(llama_cpp: Any) -> Iterator[None]:
    """Load without llama.cpp's extra weight buffers when the build has AMX kernels.

    A native build on an AMX CPU segfaults in its first decode through the AMX buffer type;
    plain CPU buffers are correct and about as fast for these small models. ``Llama`` exposes no
    switch for it, so its default-params factory is wrapped for the duration of one load (callers
    hold ``_MODELS_LOCK``).
    """
    if not _has_amx(llama_cpp):
        yield
        return
    bindings = llama_cpp.llama_cpp
    original = bindings.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_bufts
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


def _install_deadline(loaded: _LoadedModel, llama_cpp: Any) -> None:
    """Add the deadline criterion to every completion the chat handler starts.

    ``create_chat_completion`` takes no stopping criteria, but its handlers call
    ``llama.create_completion`` on the instance, so wrapping that one method is enough.
    """
    original = loaded.llama.create_completion

    def create_completion(*args: Any, **kwargs: Any) -> Any:
        criteria = list(kwargs.get("stopping_criteria") or [])
        criteria.append(loaded.past_deadline)
        kwargs["stopping_criteria"] = llama_cpp.StoppingCriteriaList(criteria)
        return original(*args, **kwargs)

    loaded.llama.create_completion = create_completion


def grammar_schema(schema: Any) -> Any:
    """``schema`` without string length limits above ``_GRAMMAR_MAX_LENGTH``: a grammar spells
    ``maxLength`` N as N nested optional repeats, and llama.cpp refuses such a grammar when it
    samples (aborting the process). The decoder still validates every length afterwards."""
    if isinstance(schema, dict):
        return {
            key: grammar_schema(value)
            for key, value in schema.items()
            if not (
                key in ("maxLength", "minLength")
                and isinstance(value, int)
                and value > _GRAMMAR_MAX_LENGTH
            )
        }
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    return schema


#: Per call, once it holds the model: a long prompt on a small machine is slow, not hung.
LOCAL_TIMEOUT_S = 120.0


class LocalLM:
    """A GGUF model run in-process; serves exactly one model id and refuses others.

    ``n_threads`` decodes generated tokens and ``n_threads_batch`` evaluates prompts (defaults:
    :func:`default_threads`). ``timeout_s`` bounds generation once the call holds the model
    (queueing is not counted);
    the seed is ``seed + sample_index`` so temperature 0 is deterministic and repeated samples
    differ only when asked to.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        model_id: str | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        timeout_s: float = LOCAL_TIMEOUT_S,
        seed: int = DEFAULT_SEED,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise LMError(f"local LM: GGUF file not found: {self.path}", path=str(self.path))
        if timeout_s <= 0:
            raise LMError("local LM: timeout_s must be > 0")
        self.model_id = model_id or f"gguf:{self.path.name}"
        self.n_ctx = n_ctx
        generation, batch = default_threads()
        self.n_threads = n_threads or generation
        self.n_threads_batch = n_threads_batch or batch
        self.timeout_s = timeout_s
        self.seed = seed
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._grammars_lock = threading.Lock()

    @classmethod
    def from_pack(cls, name: str, models_dir: str | Path | None = None, **kwargs: Any) -> LocalLM:
        """A model pack by name; it must already be installed (``dse models install NAME``)."""
        from dse.lm._packs import pack_path

        return cls(pack_path(name, models_dir), model_id=name, **kwargs)

    def __repr__(self) -> str:
        return f"LocalLM(model_id={self.model_id!r}, path={str(self.path)!r})"

    @property
    def default_model_id(self) -> str:
        return self.model_id

    @property
    def supports_constrained(self) -> bool:
        return True

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def context_tokens(self) -> int | None:
        return self.n_ctx

    def _grammar(self, schema: dict[str, Any]) -> tuple[Any, bool]:
        """Grammar for a schema, and whether it enforces the schema itself.

        A schema the converter cannot express falls back to plain-JSON grammar, reported as
        unconstrained so the decoder's validation stays the judge.
        """
        key = canonical_str(schema)
        with self._grammars_lock:
            hit = self._grammars.get(key)
            if hit is not None:
                self._grammars.move_to_end(key)
                return hit  # type: ignore[no-any-return]
        from llama_cpp import llama_grammar

        try:
            entry: tuple[Any, bool] = (
                llama_grammar.LlamaGrammar.from_json_schema(
                    json.dumps(grammar_schema(schema)), verbose=False
                ),
                True,
            )
        except Exception:
            entry = (llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF), False)
        with self._grammars_lock:
            self._grammars[key] = entry
            while len(self._grammars) > _GRAMMAR_CACHE_SIZE:
                self._grammars.popitem(last=False)
        return entry

    def _run(self, loaded: _LoadedModel, request: LMRequest) -> Completion:
        """Worker-thread body: generate under the model lock and the per-call deadline."""
        started = time.perf_counter()
        cfg = request.config
        grammar, constrained = (None, False)
        if request.response_schema is not None:
            grammar, constrained = self._grammar(request.response_schema)
        with loaded.lock:
            limit = self._start(request)
            loaded.timed_out = False
            loaded.deadline = _sooner(limit, request.not_after)
            try:
                result = loaded.llama.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in request.messages],
                    temperature=cfg.temperature,
                    top_p=cfg.top_p if cfg.top_p is not None else 1.0,
                    max_tokens=cfg.max_tokens,
                    seed=self.seed + request.sample_index,
                    grammar=grammar,
                    stream=False,
                )
            except Exception as exc:
                raise LMError(
                    f"local LM {self.model_id}: generation failed: {exc}", model=self.model_id
                ) from None
            finally:
                loaded.deadline = None
            if loaded.timed_out:
                raise self._late(request, limit, "generation")
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            ),
            model_used=self.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            constrained=constrained,
        )

    async def complete(self, request: LMRequest) -> Completion:
        if request.config.model_id != self.model_id:
            raise LMError(
                f"local LM serves {self.model_id!r} but the request asks for "
                f"{request.config.model_id!r}; refusing to substitute another model",
                model=request.config.model_id,
                loaded=self.model_id,
            )
        loaded = _MODELS.get((str(self.path), self.n_ctx, self.n_threads, self.n_threads_batch))
        if loaded is None:
            loaded = await asyncio.to_thread(
                _load, self.path, self.n_ctx, self.n_threads, self.n_threads_batch
            )
        loop = asyncio.get_running_loop()
        if request.continuations is not None:
            return await loop.run_in_executor(loaded.executor, self._score, loaded, request)
        return await loop.run_in_executor(loaded.executor, self._run, loaded, request)

    def _score(self, loaded: _LoadedModel, request: LMRequest) -> Completion:
        """Worker-thread body of a scoring request: the prompt once, then every continuation,
        under the model lock and the per-call deadline."""
        started = time.perf_counter()
        with loaded.lock:
            limit = self._start(request)
            try:
                prompt = chat_prompt_tokens(loaded.llama, request.messages)
                scores = score_continuations(
                    loaded.llama,
                    prompt,
                    request.continuations or (),
                    _sooner(limit, request.not_after),
                )
            except ScoringTimeout:
                raise self._late(request, limit, "scoring") from None
            except LMError:
                raise
            except Exception as exc:
                raise LMError(
                    f"local LM {self.model_id}: scoring failed: {exc}", model=self.model_id
                ) from None
        return Completion(
            text="",
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=scores.decoded),
            model_used=self.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            logprobs=tuple(scores.totals),
            choice_logprobs=tuple(scores.choices),
        )

    def _start(self, request: LMRequest) -> float:
        """Called holding the model: refuse a call whose caller's deadline passed while it
        queued (a spent compile must not keep the model busy), else its own time limit."""
        if request.past_deadline():
            raise LMError(
                f"local LM {self.model_id}: the caller's deadline passed before the call got "
                "the model",
                model=self.model_id,
                status="deadline",
            )
        return time.monotonic() + self.timeout_s

    def _late(self, request: LMRequest, limit: float, what: str) -> LMError:
        if request.not_after is not None and request.not_after < limit:
            return LMError(
                f"local LM {self.model_id}: {what} stopped at the caller's deadline",
                model=self.model_id,
                status="deadline",
            )
        return LMError(
            f"local LM {self.model_id}: {what} timed out after {self.timeout_s}s",
            model=self.model_id,
            status="timeout",
        )

    async def aclose(self) -> None:
        """Models stay loaded for other instances on the same file; nothing to release here."""
        return None


def _sooner(limit: float, not_after: float | None) -> float:
    return limit if not_after is None else min(limit, not_after)
