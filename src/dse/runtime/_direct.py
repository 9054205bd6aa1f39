"""``direct.v1``: render, one LM call, decode, and up to ``max_repairs`` repair calls. Blob refs
in the input are shown with their text, within a budget (see ``_inline.py``)."""

from __future__ import annotations

import asyncio
import math

from dse._canonical import canonical_str, compact_json
from dse.errors import DecodeError
from dse.lm import Message
from dse.runtime._choices import plan_choices
from dse.runtime._decode import decode_output
from dse.runtime._inline import inline_blobs
from dse.runtime._render import input_json
from dse.runtime._strategy import CHARS_PER_TOKEN, StrategyContext, StrategyResult

_REPAIR_ECHO_CHARS = 4000


class DirectStrategy:
    id = "direct.v1"

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        signature, params = ctx.signature, ctx.params
        template = ctx.prompt_template()
        text = input_json(ctx.input)
        if '"blob_id":' in text:
            room = ctx.room_chars(
                template.prompt(text).messages, reserve_tokens=_repair_reserve(ctx)
            )
            # Blob reads are store queries: off the event loop, as rlm_lite and search.v1 do.
            shown = await asyncio.to_thread(
                inline_blobs,
                ctx.input.model_dump(mode="json"),
                ctx.blobs,
                params.strategy.config,
                room,
            )
            text = compact_json(shown)
        rendered = template.prompt(text)
        messages, rendered_hash = rendered.messages, rendered.hash
        mode = params.decode.mode
        constrained = mode == "constrained" and ctx.lm.supports_constrained
        schema = signature.output_schema if constrained else None
        plan = None
        if params.choices is not None:
            plan = await plan_choices(ctx, messages, text)
            if plan.output is not None:
                return StrategyResult(
                    output=plan.output, rendered_prompt_hash=rendered_hash, trace=plan.trace
                )
            schema = plan.schema

        completion = await ctx.call_lm(messages, response_schema=schema)
        repairs = 0
        while True:
            try:
                output = decode_output(completion.text, signature.output_model, mode)
                if plan is not None:
                    plan.allowed.check(output)
                return StrategyResult(
                    output=output,
                    rendered_prompt_hash=rendered_hash,
                    repairs=repairs,
                    trace=None if plan is None else plan.trace,
                )
            except DecodeError as error:
                if repairs >= params.decode.max_repairs:
                    raise
                repairs += 1
                repair_messages = (
                    *messages,
                    Message(role="assistant", content=completion.text[:_REPAIR_ECHO_CHARS]),
                    Message(role="user", content=_repair_prompt(ctx, error)),
                )
                completion = await ctx.call_lm(
                    repair_messages, role="repair", response_schema=schema
                )


def _repair_reserve(ctx: StrategyContext) -> int:
    """Tokens a repair round adds to the prompt (the reply echoed, the error and the schema),
    kept free when inlining so the repair fits the window too."""
    if ctx.params.decode.max_repairs == 0:
        return 0
    extra = len(_repair_prompt(ctx, DecodeError("x" * 200)))
    return ctx.model_config("repair").max_tokens + math.ceil(extra / CHARS_PER_TOKEN)


def _repair_prompt(ctx: StrategyContext, error: DecodeError) -> str:
    return (
        "Your previous reply could not be used: "
        f"{error.message}.\n"
        "Reply again with JSON only (no markdown fences, no extra keys) matching this schema:\n"
        f"{canonical_str(ctx.signature.output_schema)}"
    )
