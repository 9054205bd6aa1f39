"""The controller's action grammar on the real local model (qwen2.5-coder-0.5b): llama.cpp
accepts it and the model's reply decodes as an action. With the action strings' length limits
(and an output field's, like a quote of up to 2,000 characters) in the grammar, llama.cpp
aborted the whole process on the first controller turn."""

from __future__ import annotations

import pytest

from dse.lm import LM, LMRequest, Message, ModelConfig, install_pack, lm_from_spec
from dse.rlm import Preview, action_schema_for, decode_action

pytestmark = pytest.mark.slow

PACK = "qwen2.5-coder-0.5b"
ANSWER = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 2000}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def qwen() -> LM:
    install_pack(PACK)
    return lm_from_spec(f"local:{PACK}", timeout_s=300)


async def test_the_action_grammar_decodes_an_action_on_the_real_model(qwen: LM) -> None:
    request = LMRequest(
        messages=(
            Message(role="system", content="You control a reader. Reply with one JSON action."),
            Message(role="user", content="Preview the var named doc: its first 500 characters."),
        ),
        config=ModelConfig(model_id=qwen.default_model_id, temperature=0.0, max_tokens=64),
        response_schema=action_schema_for(ANSWER),
    )
    completion = await qwen.complete(request)

    assert completion.constrained
    action = decode_action(completion.text)
    assert isinstance(action, Preview)
