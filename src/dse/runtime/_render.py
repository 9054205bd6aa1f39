"""Rendering: signature + params + input -> chat messages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dse._canonical import canonical_str
from dse.lm import Message
from dse.signature import Demo, Params, Signature

_JSON_ONLY = "Output format: JSON only. No markdown fences, no extra keys, no commentary."


def render_messages(
    signature: Signature[Any, Any], params: Params, value: BaseModel
) -> tuple[Message, ...]:
    """Render the prompt; demos go inline as JSON or, with ``demos_as='chat'``, as prior turns."""
    prompt = signature.prompt
    instruction = params.instruction if params.instruction is not None else prompt.instruction
    demos = params.few_shot if params.few_shot is not None else prompt.demos
    guidance = _join([instruction, _context_section(signature), _output_format(signature)])
    input_text = "Input:\n" + canonical_str(value.model_dump(mode="json"))

    if params.decode.demos_as == "chat":
        messages = [Message(role="system", content=_join([prompt.system, guidance]))]
        for demo in demos:
            messages.append(Message(role="user", content=_demo_input(demo)))
            messages.append(Message(role="assistant", content=canonical_str(demo.output)))
        messages.append(Message(role="user", content=input_text))
        return tuple(messages)

    messages = []
    if prompt.system.strip():
        messages.append(Message(role="system", content=prompt.system.strip()))
    examples = ""
    if demos:
        lines = [f"{_demo_input(demo)}\nOutput: {canonical_str(demo.output)}" for demo in demos]
        examples = "Examples:\n\n" + "\n\n".join(lines)
    messages.append(Message(role="user", content=_join([guidance, examples, input_text])))
    return tuple(messages)


def output_format_text(signature: Signature[Any, Any]) -> str:
    return _output_format(signature)


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
