"""Rendering: signature + params -> a prompt template; template + input -> chat messages.

Everything but the input is fixed for a (signature, params) pair, so it is rendered and hashed
once per policy rather than once per request; with demo retrieval the demos shown depend on the
input, and the template renders each input's head from parts (and an index) made once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dse._canonical import ID_PREFIX, canonical_str, compact_json, sha256_id
from dse.lm import Message
from dse.runtime._retrieve import DemoRetriever, retriever_for
from dse.signature import Demo, Params, Signature

_JSON_ONLY = "Output format: JSON only. No markdown fences, no extra keys, no commentary."


@dataclass(frozen=True)
class RenderedPrompt:
    """One input's prompt and the hash that names it in receipts."""

    messages: tuple[Message, ...]
    hash: str


@dataclass(frozen=True)
class _Layout:
    """What a policy fixes around its demos: the system text, the guidance (instruction,
    context, output format) and where demos go; renders the prompt head for a list of demos."""

    system: str
    guidance: str
    demos_as: str

    def frame(self, demos: Sequence[Demo]) -> tuple[tuple[Message, ...], str]:
        """``(head, user_prefix)`` with ``demos`` inline as JSON or as prior chat turns."""
        if self.demos_as == "chat":
            turns = [Message(role="system", content=_join([self.system, self.guidance]))]
            for demo in demos:
                turns.append(Message(role="user", content=_demo_input(demo)))
                turns.append(Message(role="assistant", content=canonical_str(demo.output)))
            return tuple(turns), ""
        system = self.system.strip()
        examples = ""
        if demos:
            lines = [f"{_demo_input(demo)}\nOutput: {canonical_str(demo.output)}" for demo in demos]
            examples = "Examples:\n\n" + "\n\n".join(lines)
        head = (Message(role="system", content=system),) if system else ()
        return head, _join([self.guidance, examples]) + "\n\n"


@dataclass(frozen=True)
class _PerInput:
    """Demos retrieved per input: the policy's fixed demos come first, then the retrieved."""

    layout: _Layout
    fixed: tuple[Demo, ...]
    retriever: DemoRetriever


@dataclass(frozen=True)
class PromptTemplate:
    """The rendered prompt minus the input: ``head`` messages, then a user turn of
    ``user_prefix`` followed by the input.

    With demo retrieval the head depends on the input: ``head`` and ``user_prefix`` show the
    fixed demos only, and :meth:`prompt` renders each input with its retrieved demos, from an
    index built once per pool (the template itself is still built once per policy).
    """

    head: tuple[Message, ...]
    user_prefix: str
    hash: str
    per_input: _PerInput | None = None

    def render(self, value: BaseModel) -> tuple[Message, ...]:
        return self.render_json(input_json(value))

    def render_json(self, text: str) -> tuple[Message, ...]:
        """Render from the input's :func:`input_json`, so a caller serializes it only once."""
        if self.per_input is None:
            return (*self.head, Message(role="user", content=self._user(self.user_prefix, text)))
        return self.prompt(text).messages

    def rendered_hash(self, value: BaseModel) -> str:
        """Names the rendered prompt (template hash + input) in receipts."""
        return self.rendered_hash_json(input_json(value))

    def rendered_hash_json(self, text: str) -> str:
        """:meth:`rendered_hash` from the input's :func:`input_json`."""
        return self.prompt(text).hash

    def prompt(self, text: str) -> RenderedPrompt:
        """The messages for an input (its :func:`input_json`) and the hash naming them.

        The hash's bytes are those of ``compact_json({"template": hash, "input": value})``,
        built around the already serialized input (sorted keys put ``input`` first); with
        retrieval the chosen pool positions join as ``"demos"``, so two inputs shown different
        demos never share a name for different prompts.
        """
        tail = ',"template":' + json.dumps(self.hash) + "}"
        if self.per_input is None:
            messages = (
                *self.head,
                Message(role="user", content=self._user(self.user_prefix, text)),
            )
            return RenderedPrompt(messages, _id('{"input":' + text + tail))
        per_input = self.per_input
        chosen = per_input.retriever.select(text)
        demos = (*per_input.fixed, *per_input.retriever.demos(chosen))
        head, user_prefix = per_input.layout.frame(demos)
        messages = (*head, Message(role="user", content=self._user(user_prefix, text)))
        document = '{"demos":' + compact_json(list(chosen)) + ',"input":' + text + tail
        return RenderedPrompt(messages, _id(document))

    @staticmethod
    def _user(user_prefix: str, text: str) -> str:
        return user_prefix + "Input:\n" + text


def build_template(signature: Signature[Any, Any], params: Params) -> PromptTemplate:
    """Render the prompt; demos go inline as JSON or, with ``demos_as='chat'``, as prior turns.

    With ``params.demo_retrieval`` the template also names the retrieval (pool, k, method,
    query fields) in its hash and renders each input with its own retrieved demos.
    """
    prompt = signature.prompt
    instruction = params.instruction if params.instruction is not None else prompt.instruction
    demos = params.few_shot if params.few_shot is not None else prompt.demos
    guidance = _join([instruction, _context_section(signature), _output_format(signature)])
    layout = _Layout(system=prompt.system, guidance=guidance, demos_as=params.decode.demos_as)
    head, user_prefix = layout.frame(demos)
    document: dict[str, Any] = {"head": [m.model_dump() for m in head], "user_prefix": user_prefix}
    per_input = None
    retrieval = params.demo_retrieval
    if retrieval is not None:
        document["demo_retrieval"] = retrieval.model_dump(mode="json", exclude_none=True)
        per_input = _PerInput(layout, tuple(demos), retriever_for(retrieval))
    return PromptTemplate(
        head=head, user_prefix=user_prefix, hash=sha256_id(document), per_input=per_input
    )


def render_messages(
    signature: Signature[Any, Any], params: Params, value: BaseModel
) -> tuple[Message, ...]:
    return build_template(signature, params).render(value)


def input_text(value: BaseModel) -> str:
    return "Input:\n" + input_json(value)


def input_json(value: BaseModel) -> str:
    """The input as it appears in the prompt: sorted-key compact JSON of its JSON form."""
    return compact_json(value.model_dump(mode="json"))


def _demo_input(demo: Demo) -> str:
    return "Input:\n" + canonical_str(demo.input)


def _output_format(signature: Signature[Any, Any]) -> str:
    if signature.prompt.output_format == "json_only":
        return _JSON_ONLY
    return f"{_JSON_ONLY} Match this JSON Schema:\n{canonical_str(signature.output_schema)}"


def _context_section(signature: Signature[Any, Any]) -> str:
    entries = signature.prompt.context
    if not entries:
        return ""
    lines = [f"{entry.key}: {canonical_str(entry.value)}" for entry in entries]
    return "Context:\n" + "\n".join(lines)


def _id(document: str) -> str:
    return ID_PREFIX + hashlib.sha256(document.encode("utf-8")).hexdigest()


def _join(parts: list[str]) -> str:
    return "\n\n".join(part.strip() for part in parts if part and part.strip())
