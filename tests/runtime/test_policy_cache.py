"""The Predictor caches what a policy fixes (verified params, rendered template), keyed by the
compiled_id the store names and checked against the running signature: a promotion, a rollback
or a canary changes the very next prediction, even when another process moved the pointer, and
a signature with another contract or other defaults never gets a template made for another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.errors import ContractMismatchError
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import (
    Artifact,
    ModelParams,
    OptimizerInfo,
    Params,
    PromptBlocks,
    RoleOverride,
    Signature,
    SignatureRegistry,
)
from dse.store import CanaryConfig, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
USER_UPDATE = '{"action":"tool","tool":"user_update"}'


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str


@pytest.fixture
def writer(store: Store) -> Iterator[ReceiptWriter]:
    w = ReceiptWriter(store)
    yield w
    w.close()


def put_artifact(store: Store, signature: Signature[Any, Any], instruction: str) -> str:
    params = Params(instruction=instruction).with_model_id("scripted")
    artifact = Artifact.build(signature, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def last_user_message(lm: ScriptedLM) -> str:
    assert lm.last_request is not None
    return lm.last_request.messages[-1].content


async def test_a_pointer_moved_by_another_store_changes_the_very_next_prediction(
    store: Store, store_url: str, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([("call me", USER_UPDATE)])
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    first = put_artifact(store, SELECT_TOOL, "First policy.")
    second = put_artifact(store, SELECT_TOOL, "Second policy.")
    other = Store.open(store_url)  # as another process (the CLI, a second replica) would
    try:
        before = await predictor.predict(SELECT_TOOL_ID, INPUT)
        assert before.source == "defaults"

        assert other.set_active(SELECT_TOOL_ID, first, expected=None, action="promote")
        served = await predictor.predict(SELECT_TOOL_ID, INPUT)
        assert (served.source, served.compiled_id) == ("active", first)
        assert last_user_message(lm).startswith("First policy.")

        assert other.set_active(SELECT_TOOL_ID, second, expected=first, action="promote")
        served = await predictor.predict(SELECT_TOOL_ID, INPUT)
        assert served.compiled_id == second
        assert last_user_message(lm).startswith("Second policy.")

        assert other.set_active(SELECT_TOOL_ID, first, expected=second, action="rollback")
        assert (await predictor.predict(SELECT_TOOL_ID, INPUT)).compiled_id == first
        assert last_user_message(lm).startswith("First policy.")

        other.put_canary(
            CanaryConfig(
                signature_id=SELECT_TOOL_ID,
                enabled=True,
                control_id=first,
                candidate_id=second,
                rollout_pct=100,
                salt="s",
            )
        )
        canary = await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key="t1")
        assert (canary.source, canary.arm, canary.compiled_id) == ("canary", "candidate", second)

        assert other.set_active(SELECT_TOOL_ID, None, expected=first, action="clear")
        other.put_canary(
            CanaryConfig(
                signature_id=SELECT_TOOL_ID,
                enabled=False,
                control_id=first,
                candidate_id=second,
                rollout_pct=100,
                salt="s",
            )
        )
        after = await predictor.predict(SELECT_TOOL_ID, INPUT)
        assert (after.source, after.compiled_id) == ("defaults", before.compiled_id)
    finally:
        other.close()


async def test_a_signature_with_another_contract_is_refused_the_cached_artifact(
    store: Store, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([("call me", USER_UPDATE)])
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    compiled_id = put_artifact(store, SELECT_TOOL, "Route it.")
    store.set_active(SELECT_TOOL_ID, compiled_id, expected=None, action="set")
    assert (await predictor.predict(SELECT_TOOL, INPUT)).compiled_id == compiled_id

    changed = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="a newer prompt"),
    )
    calls = lm.calls
    with pytest.raises(ContractMismatchError):
        await predictor.predict(changed, INPUT)
    assert lm.calls == calls
    # The cached entry of the original signature is still good for it.
    assert (await predictor.predict(SELECT_TOOL, INPUT)).compiled_id == compiled_id


async def test_defaults_follow_the_signature_object_of_the_call(
    store: Store, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([("call me", USER_UPDATE)])
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    plain = await predictor.predict(SELECT_TOOL, INPUT)

    same_contract = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=SELECT_TOOL.prompt,
        defaults=SELECT_TOOL.defaults.model_copy(update={"instruction": "Other defaults."}),
    )
    other_defaults = await predictor.predict(same_contract, INPUT)
    assert other_defaults.compiled_id != plain.compiled_id
    assert other_defaults.compiled_id == same_contract.compiled_id(
        same_contract.defaults.with_model_id("scripted")
    )
    assert last_user_message(lm).startswith("Other defaults.")

    new_prompt = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="You route.", instruction="A new instruction."),
    )
    renewed = await predictor.predict(new_prompt, INPUT)
    assert renewed.compiled_id not in {plain.compiled_id, other_defaults.compiled_id}
    assert renewed.receipt.hashes["prompt_hash"] == new_prompt.contract_hashes.prompt_hash
    assert last_user_message(lm).startswith("A new instruction.")

    again = await predictor.predict(SELECT_TOOL, INPUT)
    assert again.compiled_id == plain.compiled_id
    assert again.receipt.hashes["prompt_hash"] == SELECT_TOOL.contract_hashes.prompt_hash


async def test_policies_of_two_signatures_never_collide(
    store: Store, writer: ReceiptWriter
) -> None:
    def signature(signature_id: str) -> Signature[Note, Label]:
        return Signature(
            id=signature_id,
            input_model=Note,
            output_model=Label,
            prompt=PromptBlocks(instruction="Label the note."),
        )

    first, second = signature("test/First.v1"), signature("test/Second.v1")
    lm = ScriptedLM([], default='{"label":"a"}')
    predictor = Predictor(store, lm, SignatureRegistry([first, second]), writer)
    ids = {}
    for sig, instruction in ((first, "First's policy."), (second, "Second's policy.")):
        ids[sig.id] = put_artifact(store, sig, instruction)
        store.set_active(sig.id, ids[sig.id], expected=None, action="set")
    assert ids[first.id] != ids[second.id]

    for _ in range(2):
        for sig, instruction in ((first, "First's policy."), (second, "Second's policy.")):
            prediction = await predictor.predict(sig.id, {"text": "n"})
            assert prediction.compiled_id == ids[sig.id]
            assert prediction.receipt.signature_id == sig.id
            assert last_user_message(lm).startswith(instruction)


async def test_each_policy_and_role_calls_the_lm_with_its_own_settings(
    store: Store, writer: ReceiptWriter
) -> None:
    configs: list[tuple[str, int, float]] = []

    def reply(request: LMRequest) -> str:
        config = request.config
        configs.append((request.messages[-1].role, config.max_tokens, config.temperature))
        first_try = "could not be used" not in request.messages[-1].content
        return "not json" if first_try and len(configs) % 2 == 1 else USER_UPDATE

    lm = ScriptedLM(reply)
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)

    def artifact(max_tokens: int, repair_temperature: float) -> str:
        params = Params(
            model=ModelParams(
                model_id="scripted",
                max_tokens=max_tokens,
                roles={"repair": RoleOverride(temperature=repair_temperature)},
            )
        )
        built = Artifact.build(SELECT_TOOL, params, optimizer=OptimizerInfo(id="test"))
        store.put_artifact(built.compiled_id, built.signature_id, built.model_dump(mode="json"))
        return built.compiled_id

    small, large = artifact(32, 0.5), artifact(64, 0.9)
    store.set_active(SELECT_TOOL_ID, small, expected=None, action="set")
    assert (await predictor.predict(SELECT_TOOL_ID, INPUT)).receipt.repairs == 1
    store.set_active(SELECT_TOOL_ID, large, expected=small, action="promote")
    assert (await predictor.predict(SELECT_TOOL_ID, INPUT)).receipt.repairs == 1
    store.set_active(SELECT_TOOL_ID, small, expected=large, action="rollback")
    assert (await predictor.predict(SELECT_TOOL_ID, INPUT)).receipt.repairs == 1
    # main call, then the repair call (its role override), for each policy in turn
    assert [(tokens, temperature) for _, tokens, temperature in configs] == [
        (32, 0.0),
        (32, 0.5),
        (64, 0.0),
        (64, 0.9),
        (32, 0.0),
        (32, 0.5),
    ]
