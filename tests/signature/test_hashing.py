"""Identity: canonical JSON, contract hashes and compiled ids, pinned by golden vectors."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from dse._canonical import canonical_str, sha256_id, sha256_text_id
from dse.errors import RegistryError
from dse.signature import Demo, ModelParams, Params, PromptBlocks, Signature


class EchoIn(BaseModel):
    text: str


class EchoOut(BaseModel):
    label: Literal["a", "b"]


def make_signature(
    signature_id: str = "test/Echo.v1", instruction: str = "Label the text."
) -> Signature[EchoIn, EchoOut]:
    return Signature(
        id=signature_id,
        input_model=EchoIn,
        output_model=EchoOut,
        prompt=PromptBlocks(
            system="You label text.",
            instruction=instruction,
            demos=(Demo(id="d1", input={"text": "x"}, output={"label": "a"}),),
        ),
    )


def test_canonical_json_follows_rfc8785_numbers_keys_and_unicode() -> None:
    value = {"b": 1.0, "a": [1e21, 1e-7, -0.0, 0.1], "é": "😀", "A": None}
    assert canonical_str(value) == '{"A":null,"a":[1e+21,1e-7,0,0.1],"b":1,"é":"😀"}'


def test_sha256_ids_golden_vectors() -> None:
    assert sha256_id({}) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert sha256_text_id("hello") == (
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )


def test_contract_hashes_and_compiled_id_golden_vectors() -> None:
    sig = make_signature()
    hashes = sig.contract_hashes
    assert hashes.input_schema_hash == GOLDEN_INPUT_SCHEMA_HASH
    assert hashes.output_schema_hash == GOLDEN_OUTPUT_SCHEMA_HASH
    assert hashes.prompt_hash == GOLDEN_PROMPT_HASH
    assert sig.compiled_id(Params().with_model_id("tiny-model")) == GOLDEN_COMPILED_ID


def test_compiled_id_changes_with_model_prompt_schema_and_signature_id() -> None:
    params = Params().with_model_id("m1")
    base = make_signature().compiled_id(params)
    assert make_signature().compiled_id(Params().with_model_id("m2")) != base
    assert make_signature(instruction="Label it.").compiled_id(params) != base
    assert make_signature(signature_id="test/Other.v1").compiled_id(params) != base

    class EchoOut2(BaseModel):
        label: Literal["a", "b", "c"]

    widened = Signature(
        id="test/Echo.v1",
        input_model=EchoIn,
        output_model=EchoOut2,
        prompt=make_signature().prompt,
    )
    assert widened.compiled_id(params) != base


def test_compiled_id_requires_a_pinned_model() -> None:
    with pytest.raises(RegistryError, match="pin a model id"):
        make_signature().compiled_id(Params())


def test_with_model_id_keeps_an_explicit_model() -> None:
    params = Params(model=ModelParams(model_id="pinned"))
    assert params.with_model_id("other").model.model_id == "pinned"


GOLDEN_INPUT_SCHEMA_HASH = "sha256:e46220bad5d368f0a488503cb4809684b7a1cac32ed78da88ccdbd0b0c15201e"
GOLDEN_OUTPUT_SCHEMA_HASH = (
    "sha256:2035da83da8c4646c2b43c938f98d98cf9138cfc5eff9e7ddc8acef5d3213174"
)
GOLDEN_PROMPT_HASH = "sha256:7019d96d48ddd26648da69c1b7034b8a9e2eb2ced5075d487c5488cc8ee0fc16"
GOLDEN_COMPILED_ID = "sha256:193bf5d5c5307d928bb2e54f07d0f6d91a5e34eb438eafd5a311318e93f5262f"
