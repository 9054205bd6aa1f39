"""Scoring continuations on a loaded llama.cpp model: the total log-probability of each given
text after a chat prompt, without generating.

The prompt is the one ``create_chat_completion`` would evaluate (taken from its own handler),
decoded once after the longest prefix still in the KV cache; continuations are decoded in token
order so each shares the KV entries and logits of the common prefix with the one before. Every
function here runs on the model's worker thread under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dse.errors import LMError
from dse.lm._types import Message


class _PromptCaptured(Exception):
    def __init__(self, prompt: Any) -> None:
        super().__init__("prompt captured")
        self.prompt = prompt


class ScoringTimeout(Exception):
    """The call's time budget ran out between two decodes."""


def chat_prompt_tokens(llama: Any, messages: Sequence[Message]) -> list[int]:
    """The prompt tokens ``create_chat_completion`` would evaluate for ``messages``.

    Asked of the chat handler itself (its ``create_completion`` call is intercepted before it
    runs), so the template, special tokens and BOS handling are exactly those of generation.
    """
    own = "create_completion" in vars(llama)
    original = vars(llama).get("create_completion")

    def capture(*args: Any, **kwargs: Any) -> Any:
        raise _PromptCaptured(kwargs.get("prompt", args[0] if args else None))

    llama.create_completion = capture
    try:
        llama.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=1,
            stream=False,
        )
    except _PromptCaptured as captured:
        prompt = captured.prompt
    else:
        raise LMError("local LM: the chat handler never asked for a completion")
    finally:
        if own:
            llama.create_completion = original
        else:
            del llama.create_completion
    if isinstance(prompt, str):
        return list(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
    return [int(t) for t in prompt]


@dataclass(frozen=True)
class Scores:
    """``totals``: each continuation's summed log-softmax after the prompt. ``choices``: each one's
    log-probability as a choice among the given continuations, the model's distribution
    renormalized at every token over the tokens some continuation takes there (what decoding
    under a grammar of exactly these texts does; forced tokens cost nothing). ``decoded``:
    continuation tokens decoded (shared prefixes once)."""

    totals: list[float]
    choices: list[float]
    decoded: int


def score_continuations(
    llama: Any, prompt: list[int], continuations: Sequence[str], deadline: float
) -> Scores:
    """Score every continuation after ``prompt`` (see :class:`Scores`).

    Leaves the model holding the prompt (the next generation on it reuses the KV prefix).
    """
    import numpy as np

    pieces = [
        [int(t) for t in llama.tokenize(c.encode("utf-8"), add_bos=False, special=False)]
        for c in continuations
    ]
    longest = max((len(p) for p in pieces), default=0)
    if len(prompt) + longest > llama.n_ctx():
        raise LMError(
            f"local LM: prompt ({len(prompt)} tokens) plus the longest continuation "
            f"({longest}) exceed the context of {llama.n_ctx()} tokens"
        )
    finished = False
    try:
        start = _reusable_prefix(llama, prompt)
        (after_prompt,) = _decode(llama, prompt[start:], start, deadline, all_rows=False)
        rows: list[tuple[Any, float]] = [_log_row(np, after_prompt)]
        path: list[int] = []
        scores = [0.0] * len(pieces)
        choices = [0.0] * len(pieces)
        branches = _branches(pieces)
        decoded = 0
        for index in sorted(range(len(pieces)), key=lambda i: pieces[i]):
            tokens = pieces[index]
            common = _common_prefix(path, tokens)
            rows, path = rows[: common + 1], path[:common]
            needed = tokens[common:-1]
            if needed:
                new_rows = _decode(llama, needed, len(prompt) + common, deadline, all_rows=True)
                rows.extend(_log_row(np, row) for row in new_rows)
                path = tokens[:-1]
                decoded += len(needed)
            scores[index] = float(
                sum(rows[k][0][token] - rows[k][1] for k, token in enumerate(tokens))
            )
            choices[index] = float(
                sum(
                    rows[k][0][token] - _logsumexp(np, rows[k][0][branches[tuple(tokens[:k])]])
                    for k, token in enumerate(tokens)
                )
            )
        finished = True
        return Scores(scores, choices, decoded)
    finally:
        # The prompt's KV entries stay valid; what follows them is dropped by the next decode.
        llama.n_tokens = len(prompt) if finished else 0
        llama._requires_eval = True


def _reusable_prefix(llama: Any, prompt: list[int]) -> int:
    """How many leading prompt tokens the KV cache already holds (the last one is always decoded
    again, for its logits); the rest of the cache is dropped."""
    held = [int(t) for t in llama.input_ids[: llama.n_tokens]]
    prefix = min(_common_prefix(held, prompt), len(prompt) - 1)
    if prefix > 0 and llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
        return prefix
    llama._ctx.kv_cache_seq_rm(-1, 0, -1)
    return 0


def _decode(
    llama: Any, tokens: list[int], n_past: int, deadline: float, *, all_rows: bool
) -> list[Any]:
    """Decode ``tokens`` at position ``n_past``; the logits after each token (or only the last)."""
    import numpy as np

    n_vocab = llama.n_vocab()
    llama._ctx.kv_cache_seq_rm(-1, n_past, -1)
    rows: list[Any] = []
    for offset in range(0, len(tokens), llama.n_batch):
        if time.monotonic() > deadline:
            raise ScoringTimeout
        batch = tokens[offset : offset + llama.n_batch]
        position = n_past + offset
        llama._batch.set_batch(batch=batch, n_past=position, logits_all=all_rows)
        llama._ctx.decode(llama._batch)
        llama.input_ids[position : position + len(batch)] = batch
        llama.n_tokens = position + len(batch)
        count = len(batch) if all_rows else 1
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(count * n_vocab,))
        block = logits.reshape(count, n_vocab).copy()
        if all_rows or offset + len(batch) >= len(tokens):
            rows.extend(block)
    return rows


def _branches(pieces: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """For every prefix of a continuation, the tokens continuations take right after it."""
    nexts: dict[tuple[int, ...], set[int]] = {}
    for tokens in pieces:
        for k, token in enumerate(tokens):
            nexts.setdefault(tuple(tokens[:k]), set()).add(token)
    return {prefix: sorted(tokens) for prefix, tokens in nexts.items()}


def _logsumexp(np: Any, values: Any) -> float:
    peak = float(values.max())
    return peak + float(np.log(np.exp(values - peak).sum()))


def _log_row(np: Any, logits: Any) -> tuple[Any, float]:
    """A logits row with its log-sum-exp, so ``row[t] - lse`` is token ``t``'s log-probability."""
    return logits, _logsumexp(np, logits)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
