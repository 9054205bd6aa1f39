"""Artifacts refuse to run against a contract other than the one they were compiled for."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from dse.errors import ContractMismatchError
from dse.signature import Artifact, OptimizerInfo, Params, PromptBlocks, Signature

from .test_hashing import EchoIn, EchoOut, make_signature


def build(sig: Signature[EchoIn, EchoOut]) -> Artifact:
    return Artifact.build(sig, Params().with_model_id("m"), optimizer=OptimizerInfo(id="test"))


def test_artifact_round_trips_through_json_and_verifies() -> None:
    sig = make_signature()
    artifact = build(sig)
    again = Artifact.model_validate(artifact.model_dump(mode="json"))
    again.verify_against(sig)
    assert again.compiled_id == sig.compiled_id(Params().with_model_id("m"))
    assert again.output_schema["properties"]["label"]["enum"] == ["a", "b"]


def test_artifact_for_another_prompt_is_refused_naming_both_hashes() -> None:
    artifact = build(make_signature())
    running = make_signature(instruction="A different instruction.")
    with pytest.raises(ContractMismatchError) as info:
        artifact.verify_against(running)
    message = str(info.value)
    assert "prompt_hash" in message
    assert artifact.hashes.prompt_hash in message
    assert running.contract_hashes.prompt_hash in message


def test_artifact_for_another_output_schema_is_refused() -> None:
    class WiderOut(BaseModel):
        label: Literal["a", "b", "c"]

    artifact = build(make_signature())
    running = Signature(
        id="test/Echo.v1", input_model=EchoIn, output_model=WiderOut, prompt=PromptBlocks()
    )
    with pytest.raises(ContractMismatchError, match="output_schema_hash"):
        artifact.verify_against(running)


def test_altered_params_no_longer_match_the_compiled_id() -> None:
    sig = make_signature()
    body = build(sig).model_dump(mode="json")
    body["params"]["model"]["temperature"] = 0.9
    with pytest.raises(ContractMismatchError, match="altered"):
        Artifact.model_validate(body).verify_against(sig)


def test_artifact_of_another_signature_is_refused() -> None:
    artifact = build(make_signature(signature_id="test/Other.v1"))
    with pytest.raises(ContractMismatchError, match=r"belongs to signature test/Other\.v1"):
        artifact.verify_against(make_signature())
