"""Turn the user's ``--lm`` / ``DSE_LM`` string into a backend."""

from __future__ import annotations

from pathlib import Path

from dse.errors import LMError
from dse.lm._types import LM

SPEC_FORMS = (
    "local:NAME (an installed model pack, e.g. local:qwen2.5-coder-0.5b)",
    "gguf:PATH (a GGUF file)",
    "openai:MODEL (with OPENAI_BASE_URL / OPENAI_API_KEY; DSE_OPENAI_CONTEXT_TOKENS=N)",
    "scripted:FILE (JSONL of {match, reply} rules)",
)


def lm_from_spec(
    spec: str,
    *,
    models_dir: str | Path | None = None,
    concurrency: int = 8,
    timeout_s: float | None = None,
) -> LM:
    """Build the backend a spec names; a pack must already be installed (never downloads here).
    ``timeout_s`` bounds each call; by default each backend's own (a local model on two cores
    needs longer for a long prompt than a remote endpoint should ever take)."""
    kind, sep, rest = spec.strip().partition(":")
    rest = rest.strip()
    if not sep or not rest:
        raise LMError(f"bad LM spec {spec!r}; accepted forms: " + "; ".join(SPEC_FORMS))
    if kind == "local":
        from dse.lm._local import LOCAL_TIMEOUT_S, LocalLM

        return LocalLM.from_pack(rest, models_dir, timeout_s=timeout_s or LOCAL_TIMEOUT_S)
    if kind == "gguf":
        from dse.lm._local import LOCAL_TIMEOUT_S, LocalLM

        return LocalLM(rest, timeout_s=timeout_s or LOCAL_TIMEOUT_S)
    if kind == "openai":
        from dse.lm._openai import OPENAI_TIMEOUT_S, OpenAILM

        return OpenAILM(rest, concurrency=concurrency, timeout_s=timeout_s or OPENAI_TIMEOUT_S)
    if kind == "scripted":
        from dse.lm._scripted import ScriptedLM

        return ScriptedLM.from_file(rest)
    raise LMError(f"unknown LM kind {kind!r} in {spec!r}; accepted forms: " + "; ".join(SPEC_FORMS))
