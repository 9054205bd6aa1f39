"""A retrieval policy on the real local 0.5B model: the Predict path shows the model the pool
demos nearest each input, answers in the schema, and writes a receipt naming that prompt.

Slow: loads qwen2.5-coder-0.5b (installed from the package index once per machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID, dataset_path
from dse.lm import LM, Completion, LMRequest, WrappedLM, install_pack, lm_from_spec
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Artifact, Demo, DemoRetrieval, OptimizerInfo, SignatureRegistry
from dse.store import Store

pytestmark = pytest.mark.slow

PACK = "qwen2.5-coder-0.5b"


class Recording(WrappedLM):
    """The real model, with each request it was sent kept for the test to read."""

    def __init__(self, inner: LM) -> None:
        super().__init__(inner)
        self.requests: list[LMRequest] = []

    async def complete(self, request: LMRequest) -> Completion:
        self.requests.append(request)
        return await self.inner.complete(request)


def train_pool() -> tuple[Demo, ...]:
    """SelectTool's shipped train rows as a retrieval pool."""
    rows = [json.loads(line) for line in Path(dataset_path()).read_text().splitlines()]
    return tuple(
        Demo(id=r["example_id"], input=r["input"], output=r["expected"])
        for r in rows
        if r["split"] == "train"
    )


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'local.db'}")
    yield store
    store.close()


async def test_a_retrieval_policy_predicts_with_the_real_model_and_writes_its_receipt(
    local_store: Store,
) -> None:
    install_pack(PACK)
    lm = Recording(lm_from_spec(f"local:{PACK}", timeout_s=120))
    params = SELECT_TOOL.defaults.model_copy(
        update={"few_shot": (), "demo_retrieval": DemoRetrieval(pool=train_pool(), k=3)}
    ).with_model_id(lm.default_model_id)
    artifact = Artifact.build(SELECT_TOOL, params, optimizer=OptimizerInfo(id="test"))
    local_store.put_artifact(artifact.compiled_id, SELECT_TOOL_ID, artifact.model_dump(mode="json"))
    assert local_store.set_active(
        SELECT_TOOL_ID, artifact.compiled_id, expected=None, action="promote"
    )
    writer = ReceiptWriter(local_store)
    try:
        predictor = Predictor(local_store, lm, SignatureRegistry([SELECT_TOOL]), writer)
        hint = {"user_handle": "samantha.r", "agent_name": "Autopilot"}
        prediction = await predictor.predict(
            SELECT_TOOL_ID, {"message": "please call me Sam from now on", "blueprint_hint": hint}
        )
        writer.flush()
    finally:
        writer.close()
        await lm.aclose()

    assert prediction.compiled_id == artifact.compiled_id
    assert prediction.output.model_dump(mode="json")["action"] in ("tool", "none")
    (request,) = lm.requests
    prompt = request.messages[-1].content
    assert prompt.count("Output: ") == 3
    assert '"call me Sam from now on"' in prompt  # the nearest train row was retrieved
    stored = local_store.get_receipt(prediction.receipt_id)
    assert stored is not None and stored.status == "ok"
    assert stored.compiled_id == artifact.compiled_id
    assert stored.model_used == PACK
    hashes = stored.body["hashes"]
    assert hashes["rendered_prompt_hash"] == prediction.receipt.hashes["rendered_prompt_hash"]
