"""Rendering: signature + params -> a prompt template; template + input -> chat messages.

Everything but the input is fixed for a (signature, params) pair, so it is rendered and hashed
once per policy rather than once per request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dse._canonical import ID_PREFIX, canonical_str, compact_json, sha256_id
from dse.lm import Message
from dse.signature import Demo, Params, Signature

_JSON_ONLY = "Output format: JSON only. No markdown fences, no extra keys, no commentary."


@dataclass(frozen=True)
class PromptTemplate:
    """The rendered prompt minus the input: ``head`` messages, then a user turn of
    ``user_prefix`` followed by the input."""

    head: tuple[Message, ...]
    user_prefix: str
    hash: str

    def render(self, value: BaseModel) -> tuple[Message, ...]:
        return self.render_json(input_json(value))

    def render_json(self, text: str) -> tuple[Message, ...]:
        """Render from the input's :func:`input_json`, so a caller serializes it only once."""
        return (*self.head, Message(role="user", content=self.user_prefix + "Input:\n" + text))

    def rendered_hash(self, value: BaseModel) -> str:
        """Names the rendered prompt (template hash + input) in receipts."""
        return self.rendered_hash_json(input_json(value))

    def rendered_hash_json(self, text: str) -> str:
        """:meth:`rendered_hash` from the input's :func:`input_json`.

        The bytes are those of ``compact_json({"template": hash, "input": value})``, built
        around the already serialized input: sorted keys put ``input`` first.
        """
        document = '{"input":' + text + ',"template":' + json.dumps(self.hash) + "}"
        return ID_PREFIX + hashlib.sha256(document.encode("utf-8")).hexdigest()


def build_template(signature: Signature[Any, Any], params: Params) -> PromptTemplate:
    """Render the prompt; demos go inline as JSON or, with ``demos_as='chat'``, as prior turns."""
    prompt = signature.prompt
    instruction = params.instruction if params.instruction is not None else prompt.instruction
    demos = params.few_shot if params.few_shot is not None else prompt.demos
    guidance = _join([instruction, _context_section(signature), _output_format(signature)])

    head: list[Message]
    if params.decode.demos_as == "chat":
        head = [Message(role="system", content=_join([prompt.system, guidance]))]
        for demo in demos:
            head.append(Message(role="user", content=_demo_input(demo)))
            head.append(Message(role="assistant", content=canonical_str(demo.output)))
        user_prefix = ""
    else:
        head = (
            [Message(role="system", content=prompt.system.strip())] if prompt.system.strip() else []
        )
        examples = ""
        if demos:
            lines = [f"{_demo_input(demo)}\nOutput: {canonical_str(demo.output)}" for demo in demos]
            examples = "Examples:\n\n" + "\n\n".join(lines)
        user_prefix = _join([guidance, examples]) + "\n\n"
    template_hash = sha256_id({"head": [m.model_dump() for m in head], "user_prefix": user_prefix})
    return PromptTemplate(head=tuple(head), user_prefix=user_prefix, hash=template_hash)


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


def _join(parts: list[str]) -> str:
    return "\n\n".join(part.strip() for part in parts if part and part.strip())
