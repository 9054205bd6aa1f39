"""The kernel: executes one action over the var space and the scoped blobs, deterministically,
and returns an observation (data for the controller, always marked untrusted).

It applies every default from the knobs, clamps sizes to hard caps (saying so), and raises
KernelError for anything it cannot do; the loop turns that into an error observation.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from dse.rlm._actions import (
    Chunk,
    ExtractOverChunks,
    Load,
    Preview,
    Search,
    SubLm,
    WriteVar,
)
from dse.rlm._blobs import ScopedBlobs
from dse.rlm._errors import KernelError
from dse.rlm._knobs import RlmKnobs
from dse.rlm._lexical import best_passages
from dse.rlm._search import compile_query, find
from dse.rlm._vars import (
    INPUT_PREFIX,
    ITEM_SEPARATOR,
    BlobVar,
    ListVar,
    Span,
    TextVar,
    VarSpace,
    VarValue,
)

MAX_SEARCH_MATCHES = 200
MAX_CONTEXT_CHARS = 5000
EXTRACT_PREVIEWS = 8
PREVIEW_OF_OUTPUT = 300
OPENING = "opening"
_OPENING_LINE_CHARS = 400
_OPENINGS_KEPT = 512
_OPENINGS: dict[tuple[str, int, tuple[str, ...]], list[tuple[int, int, int]]] = {}

KernelAction = Preview | Search | Load | Chunk | WriteVar | SubLm | ExtractOverChunks


class SubModel(Protocol):
    """The sub-LM as the kernel sees it: how many calls the budgets still allow (None: no
    limit) and one call of ``instruction`` over ``content``."""

    def remaining(self) -> int | None: ...

    async def ask(self, instruction: str, content: str) -> str: ...


class Kernel:
    def __init__(self, knobs: RlmKnobs, vars: VarSpace, blobs: ScopedBlobs, sub: SubModel) -> None:
        self.knobs = knobs
        self.vars = vars
        self.blobs = blobs
        self.sub = sub
        self._sub_outputs = 0

    async def execute(self, action: KernelAction) -> dict[str, Any]:
        """The observation of ``action``; KernelError when it cannot be carried out."""
        if isinstance(action, Preview):
            body = await self._preview(action)
        elif isinstance(action, Search):
            body = await self._search(action)
        elif isinstance(action, Load):
            body = await self._load(action)
        elif isinstance(action, Chunk):
            body = await self._chunk(action)
        elif isinstance(action, WriteVar):
            body = self._write_var(action)
        elif isinstance(action, SubLm):
            body = await self._sub_lm(action)
        else:
            body = await self._extract(action)
        return {"untrusted": True, "ok": True, "action": action.action, **body}

    async def opening(self, query: str, names: list[str]) -> dict[str, Any] | None:
        """The observation the kernel opens with: the ``opening_passages`` lines of the vars
        ``names`` that best match ``query`` by BM25 (None when nothing matches). A small
        controller that answers at once then answers from the text, not from a guess."""
        wanted = self.knobs.opening_passages
        if wanted == 0 or not query.strip() or not names:
            return None
        texts = [await self.text_of(name) for name in names]
        blob_ids = {
            name: value.blob_id
            for name in names
            if isinstance(value := self.vars.get(name), BlobVar)
        }
        # Seeded inputs are blobs, so their ids name their text: compile runs one row under
        # many candidates, and the ranking of a row's documents is worked out once.
        key = (query, wanted, tuple(blob_ids.values())) if len(blob_ids) == len(names) else None
        found = _OPENINGS.get(key) if key is not None else None
        if found is None:
            found = await asyncio.to_thread(
                best_passages, query, texts, max_chars=_OPENING_LINE_CHARS, k=wanted
            )
            if key is not None:
                _OPENINGS[key] = found
                while len(_OPENINGS) > _OPENINGS_KEPT:
                    _OPENINGS.pop(next(iter(_OPENINGS)))
        if not found:
            return None
        passages = [
            {"var": names[index], "offset": start, "text": texts[index][start:end]}
            for index, start, end in found
        ]
        return {
            "untrusted": True,
            "ok": True,
            "action": OPENING,
            "note": "the lines of the long inputs that best match the task input, best first",
            "passages": passages,
            "blob_ids": {p["var"]: blob_ids[p["var"]] for p in passages if p["var"] in blob_ids},
        }

    async def text_of(self, name: str) -> str:
        """A var read as text: a list var's items joined by a blank line."""
        return await self.read(self.vars.get(name))

    async def read(self, value: VarValue) -> str:
        if isinstance(value, TextVar):
            return value.text
        if isinstance(value, BlobVar):
            return await self.blobs.read(value.blob_id)
        parts = [await self._span_text(item) for item in value.items]
        return ITEM_SEPARATOR.join(parts)

    async def chunk_value(
        self, value: VarValue, chunk_chars: int, overlap: int, limit: int
    ) -> tuple[tuple[Span, ...], int, int]:
        """Spans of ``value`` in chunks: ``(spans, covered_chars, total_chars)``."""
        if isinstance(value, BlobVar):
            blob_id, total = value.blob_id, value.chars
        else:
            text = await self.read(value)
            blob_id, total = await self.blobs.write(text), len(text)
        spans: list[Span] = []
        start = 0
        while start < total and len(spans) < limit:
            end = min(total, start + chunk_chars)
            spans.append(Span(blob_id, start, end))
            if end >= total:
                break
            start = end - overlap
        covered = spans[-1].end if spans else 0
        return tuple(spans), covered, total

    # -- actions ---------------------------------------------------------------------------------

    async def _preview(self, action: Preview) -> dict[str, Any]:
        text = await self.text_of(action.var)
        offset = action.offset or 0
        if offset > len(text):
            raise KernelError(
                "bad_range", f"offset {offset} is past the end of {action.var} ({len(text)} chars)"
            )
        cap = self.knobs.observation_chars
        wanted = action.length if action.length is not None else self.knobs.preview_chars
        length = min(wanted, cap)
        end = min(len(text), offset + length)
        body: dict[str, Any] = {
            "var": action.var,
            "offset": offset,
            "length": end - offset,
            "total_chars": len(text),
            "truncated": end < len(text),
            "text": text[offset:end],
        }
        if wanted > cap:
            body["clamped"] = {"length": cap}
        return body

    async def _search(self, action: Search) -> dict[str, Any]:
        text = await self.text_of(action.var)
        pattern = compile_query(action.query, regex=action.regex, ignore_case=action.ignore_case)
        wanted = action.max_matches or self.knobs.search_matches
        limit = min(wanted, MAX_SEARCH_MATCHES)
        context_wanted = (
            action.context_chars
            if action.context_chars is not None
            else self.knobs.search_context_chars
        )
        context = min(context_wanted, MAX_CONTEXT_CHARS)
        found, capped = find(pattern, text, regex=action.regex)
        matches = [
            {
                "start": m.start,
                "end": m.end,
                "snippet": text[max(0, m.start - context) : m.end + context],
            }
            for m in found[:limit]
        ]
        body: dict[str, Any] = {
            "var": action.var,
            "query": action.query,
            "total_chars": len(text),
            "total_matches": len(found),
            "total_matches_capped": capped,
            "truncated": len(found) > limit,
            "matches": matches,
        }
        clamped = {
            key: cap
            for key, value, cap in (
                ("max_matches", wanted, MAX_SEARCH_MATCHES),
                ("context_chars", context_wanted, MAX_CONTEXT_CHARS),
            )
            if value > cap
        }
        if clamped:
            body["clamped"] = clamped
        return body

    async def _load(self, action: Load) -> dict[str, Any]:
        text = await self.blobs.read(action.blob_id)
        name = action.into or self.vars.fresh_name("blob." + action.blob_id.split(":")[-1][:12])
        self.vars.put(name, BlobVar(action.blob_id, len(text)))
        return {"into": name, "blob_id": action.blob_id, "chars": len(text)}

    async def _chunk(self, action: Chunk) -> dict[str, Any]:
        value = self.vars.get(action.var)
        knobs = self.knobs
        chunk_chars = action.chunk_chars or knobs.chunk_chars
        overlap = (
            action.overlap_chars
            if action.overlap_chars is not None
            else min(knobs.overlap_chars, chunk_chars // 2)
        )
        if overlap >= chunk_chars:
            raise KernelError(
                "bad_range",
                f"overlap_chars ({overlap}) must be below chunk_chars ({chunk_chars})",
            )
        limit = min(action.max_chunks or knobs.max_chunks, knobs.max_chunks)
        spans, covered, total = await self.chunk_value(value, chunk_chars, overlap, limit)
        name = action.into or self._derived(action.var, ".chunks")
        self.vars.put(name, ListVar(spans))
        body: dict[str, Any] = {
            "into": name,
            "chunks": len(spans),
            "chunk_chars": chunk_chars,
            "overlap_chars": overlap,
            "total_chars": total,
            "covered_chars": covered,
            "truncated": covered < total,
        }
        if action.max_chunks is not None and action.max_chunks > knobs.max_chunks:
            body["clamped"] = {"max_chunks": knobs.max_chunks}
        return body

    def _write_var(self, action: WriteVar) -> dict[str, Any]:
        self.vars.put(action.name, TextVar(action.value))
        return {"name": action.name, "chars": len(action.value)}

    async def _sub_lm(self, action: SubLm) -> dict[str, Any]:
        if action.var is not None and action.text is not None:
            raise KernelError("invalid_action", "sub_lm takes var or text, not both")
        content = ""
        if action.var is not None:
            content = await self.text_of(action.var)
        elif action.text is not None:
            content = action.text
        name = action.into or self._next_sub_name()
        self.vars.check_writable(name)
        self._check_sub_budget(1)
        limit = self.knobs.sub_input_chars
        reply = await self.sub.ask(action.prompt, content[:limit])
        blob_id = await self.blobs.write(reply)
        self.vars.put(name, BlobVar(blob_id, len(reply)))
        return {
            "into": name,
            "chars": len(reply),
            "input_chars": min(len(content), limit),
            "input_truncated": len(content) > limit,
            "preview": reply[:PREVIEW_OF_OUTPUT],
        }

    async def _extract(self, action: ExtractOverChunks) -> dict[str, Any]:
        value = self.vars.get(action.var)
        knobs = self.knobs
        limit = min(action.max_chunks or knobs.max_chunks, knobs.max_chunks)
        if isinstance(value, ListVar):
            spans = value.items[:limit]
        else:
            spans, _, _ = await self.chunk_value(
                value, knobs.chunk_chars, knobs.overlap_chars, limit
            )
        name = action.into or self._derived(action.var, ".extracts")
        self.vars.check_writable(name)
        self._check_sub_budget(1 if spans else 0)
        outputs: list[Span] = []
        stopped: str | None = None
        for index, span in enumerate(spans):
            remaining = self.sub.remaining()
            if remaining is not None and remaining <= 0:
                stopped = "the sub-LM call budget ran out"
                break
            chunk = await self._span_text(span)
            content = f"Chunk {index + 1} of {len(spans)}:\n{chunk[: knobs.sub_input_chars]}"
            reply = await self.sub.ask(action.instruction, content)
            outputs.append(Span(await self.blobs.write(reply), 0, len(reply)))
        self.vars.put(name, ListVar(tuple(outputs)))
        previews = [
            (await self._span_text(item))[:PREVIEW_OF_OUTPUT] for item in outputs[:EXTRACT_PREVIEWS]
        ]
        body: dict[str, Any] = {
            "into": name,
            "chunks": len(spans),
            "processed": len(outputs),
            "previews": previews,
        }
        if stopped is not None:
            body["stopped"] = stopped
        return body

    # -- helpers ---------------------------------------------------------------------------------

    async def _span_text(self, span: Span) -> str:
        text = await self.blobs.read(span.blob_id)
        return text[span.start : span.end]

    def _check_sub_budget(self, needed: int) -> None:
        remaining = self.sub.remaining()
        if needed and remaining is not None and remaining < needed:
            raise KernelError("budget", "no sub-LM call is left in this prediction's budgets")

    def _derived(self, var: str, suffix: str) -> str:
        """A free default name for what is made from ``var`` (outside the read-only input)."""
        stem = var.removeprefix(INPUT_PREFIX)
        return self.vars.fresh_name(stem + suffix)

    def _next_sub_name(self) -> str:
        self._sub_outputs += 1
        return self.vars.fresh_name(f"sub.{self._sub_outputs}")
