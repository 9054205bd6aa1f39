"""Params.demo_retrieval: absent, it leaves every compiled id as it was; set, it is hashed into
the compiled id and travels with its pool inside the artifact."""

from __future__ import annotations

import pytest

from dse.errors import ContractMismatchError
from dse.signature import Artifact, Demo, DemoRetrieval, OptimizerInfo, Params

from .test_hashing import GOLDEN_COMPILED_ID, make_signature

POOL = (
    Demo(id="p1", input={"text": "weather in Paris"}, output={"label": "a"}),
    Demo(id="p2", input={"text": "email Bob"}, output={"label": "b"}),
)


def test_an_unset_demo_retrieval_keeps_the_golden_compiled_id() -> None:
    params = Params(demo_retrieval=None).with_model_id("tiny-model")
    assert "demo_retrieval" not in params.canonical()
    assert make_signature().compiled_id(params) == GOLDEN_COMPILED_ID


def test_a_demo_retrieval_is_part_of_the_compiled_id() -> None:
    sig = make_signature()
    base = Params().with_model_id("tiny-model")
    ids = {
        sig.compiled_id(base.model_copy(update={"demo_retrieval": spec}))
        for spec in (
            DemoRetrieval(pool=POOL, k=1),
            DemoRetrieval(pool=POOL, k=2),
            DemoRetrieval(pool=POOL[:1], k=1),
            DemoRetrieval(pool=POOL, k=1, query_fields=("text",)),
        )
    }
    assert len(ids) == 4 and GOLDEN_COMPILED_ID not in ids


def test_a_params_with_demo_retrieval_round_trips_through_an_artifact() -> None:
    sig = make_signature()
    spec = DemoRetrieval(pool=POOL, k=2, query_fields=("text",))
    params = Params(few_shot=(), demo_retrieval=spec).with_model_id("m")
    artifact = Artifact.build(sig, params, optimizer=OptimizerInfo(id="test"))
    body = artifact.model_dump(mode="json")
    assert body["params"]["demo_retrieval"]["pool"][0]["input"] == {"text": "weather in Paris"}
    again = Artifact.model_validate(body)
    again.verify_against(sig)
    assert again.params == params
    assert again.compiled_id == sig.compiled_id(params)

    body["params"]["demo_retrieval"]["k"] = 1
    with pytest.raises(ContractMismatchError, match="altered"):
        Artifact.model_validate(body).verify_against(sig)
