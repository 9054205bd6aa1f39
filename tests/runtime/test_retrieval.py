"""Demos retrieved per input: the k nearest pool demos (BM25), deterministic, topped up when an
input matches nothing, never the input itself, rendered exactly like fixed demos, with an index
built once per policy and a rendered-prompt hash that names the demos each input was shown."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.eval import Candidate, Evaluator, exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter, build_template
from dse.runtime import _retrieve as retrieve
from dse.runtime._render import input_json
from dse.signature import (
    Artifact,
    DecodeParams,
    Demo,
    DemoRetrieval,
    OptimizerInfo,
    Params,
    SignatureRegistry,
)
from dse.store import ExampleIn, Store

from ..signature.test_hashing import EchoIn, make_signature

POOL = (
    Demo(id="weather-1", input={"text": "weather in Paris tomorrow"}, output={"label": "a"}),
    Demo(id="email-1", input={"text": "send an email to Bob"}, output={"label": "b"}),
    Demo(id="weather-2", input={"text": "is it raining, weather report"}, output={"label": "a"}),
    Demo(id="email-2", input={"text": "email the report to Alice"}, output={"label": "b"}),
    Demo(id="calendar-1", input={"text": "book a meeting on my calendar"}, output={"label": "c"}),
)
FIXED = Demo(id="fixed", input={"text": "fixed example"}, output={"label": "c"})


def ids(template_params: Params, text: str) -> list[str]:
    template = build_template(make_signature(), template_params)
    assert template.per_input is not None
    chosen = template.per_input.retriever.select(input_json(EchoIn(text=text)))
    return [POOL[i].id for i in chosen]


def retrieval(k: int = 2, **extra: Any) -> Params:
    return Params(few_shot=(), demo_retrieval=DemoRetrieval(pool=POOL, k=k, **extra))


@pytest.fixture(autouse=True)
def fresh_index_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieve, "_CACHE", OrderedDict())
    monkeypatch.setattr(retrieve, "_BY_POOL", OrderedDict())


def test_a_policys_index_is_found_again_without_hashing_its_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Predictions reuse one params object, so its pool is found by identity; an equal spec
    over another copy of the pool is found by content; another k is another retriever."""
    hashed: list[int] = []
    original = retrieve.sha256_id
    monkeypatch.setattr(retrieve, "sha256_id", lambda value: hashed.append(1) or original(value))
    spec = DemoRetrieval(pool=POOL, k=2)
    first = retrieve.retriever_for(spec)
    assert retrieve.retriever_for(spec) is first and len(hashed) == 1
    assert retrieve.retriever_for(DemoRetrieval(pool=POOL, k=2)) is first and len(hashed) == 2
    assert retrieve.retriever_for(DemoRetrieval(pool=POOL, k=3)) is not first


def test_the_nearest_pool_demos_come_first_and_k_is_respected() -> None:
    assert ids(retrieval(k=2), "what is the weather in Paris") == ["weather-1", "weather-2"]


def test_max_chars_keeps_the_best_ranked_demos_that_fit_and_always_one() -> None:
    """weather-1 is 49 characters as compact JSON and weather-2 53: 110 fits both, 100 only
    the first, and 10 still shows the best match."""
    assert [retrieve.demo_chars(d) for d in POOL[:3:2]] == [49, 53]
    question = "what is the weather in Paris"
    assert ids(retrieval(k=2, max_chars=110), question) == ["weather-1", "weather-2"]
    assert ids(retrieval(k=2, max_chars=100), question) == ["weather-1"]
    assert ids(retrieval(k=2, max_chars=10), question) == ["weather-1"]
    # Left out of the hash while unset, so policies made before it keep their ids.
    assert "max_chars" not in DemoRetrieval(pool=POOL).model_dump()
    assert ids(retrieval(k=1), "please email Bob") == ["email-1"]
    assert len(ids(retrieval(k=4), "please email Bob")) == 4
    assert ids(retrieval(k=32), "calendar") == [
        "calendar-1",
        "weather-1",
        "email-1",
        "weather-2",
        "email-2",
    ]


def test_ties_keep_pool_order_and_the_choice_is_the_same_every_time() -> None:
    twins = (
        Demo(id="second", input={"text": "alpha beta"}, output={"label": "b"}),
        Demo(id="first", input={"text": "alpha beta"}, output={"label": "a"}),
    )
    params = Params(demo_retrieval=DemoRetrieval(pool=twins, k=1))
    template = build_template(make_signature(), params)
    assert template.per_input is not None
    text = input_json(EchoIn(text="alpha"))
    assert {template.per_input.retriever.select(text) for _ in range(5)} == {(0,)}


def test_an_input_that_matches_nothing_still_gets_k_demos_one_per_output_first() -> None:
    assert ids(retrieval(k=3), "zzz qqq") == ["weather-1", "email-1", "calendar-1"]
    assert ids(retrieval(k=2), "") == ["weather-1", "email-1"]
    # One matching demo, then the fallback fills the rest without repeating it.
    assert ids(retrieval(k=3), "book") == ["calendar-1", "weather-1", "email-1"]


def test_a_pool_demo_is_never_shown_to_its_own_input() -> None:
    chosen = ids(retrieval(k=5), "send an email to Bob")
    assert "email-1" not in chosen
    assert len(chosen) == 4


def test_query_fields_choose_which_input_fields_are_matched() -> None:
    pool = (
        Demo(id="x", input={"message": "refund", "topic": "billing"}, output={"label": "a"}),
        Demo(id="y", input={"message": "billing", "topic": "refund"}, output={"label": "b"}),
    )
    spec = DemoRetrieval(pool=pool, k=1, query_fields=("message",))
    chosen = retrieve.DemoRetriever(spec).select('{"message":"refund please","topic":"billing"}')
    assert [pool[i].id for i in chosen] == ["x"]


def test_a_query_field_may_be_a_dotted_path_into_a_nested_input() -> None:
    """``request.text`` names the text under ``request``; a top-level key that holds a dot is
    still read as itself, and a path that is missing or runs into a non-object adds nothing."""
    pool = (
        Demo(id="x", input={"request": {"text": "refund", "topic": "billing"}}, output={"l": "a"}),
        Demo(id="y", input={"request": {"text": "billing", "topic": "refund"}}, output={"l": "b"}),
    )
    spec = DemoRetrieval(pool=pool, k=1, query_fields=("request.text",))
    chosen = retrieve.DemoRetriever(spec).select(
        '{"request":{"text":"refund now","topic":"billing"}}'
    )
    assert [pool[i].id for i in chosen] == ["x"]

    fields = ("a.b", "request.text", "request.text.more", "gone.x")
    value = {"a.b": "dotted", "request": {"text": "nested"}, "gone": "flat"}
    assert retrieve.query_text(value, fields) == "dotted\nnested"


@pytest.mark.parametrize("demos_as", ["inline", "chat"])
def test_retrieved_demos_render_exactly_like_fixed_demos_after_them(demos_as: str) -> None:
    decode = DecodeParams(demos_as=demos_as)  # type: ignore[arg-type]
    spec = DemoRetrieval(pool=POOL, k=2)
    value = EchoIn(text="weather in Paris")
    with_retrieval = Params(few_shot=(FIXED,), demo_retrieval=spec, decode=decode)
    as_fixed = Params(few_shot=(FIXED, POOL[0], POOL[2]), decode=decode)
    rendered = build_template(make_signature(), with_retrieval).render(value)
    assert rendered == build_template(make_signature(), as_fixed).render(value)
    assert len(rendered) == (8 if demos_as == "chat" else 2)


def test_the_template_and_rendered_hashes_name_the_retrieval_and_the_demos_shown() -> None:
    signature = make_signature()
    plain = build_template(signature, Params(few_shot=()))
    template = build_template(signature, retrieval(k=2))
    assert template.hash != plain.hash
    assert template.hash != build_template(signature, retrieval(k=3)).hash
    weather, email = (input_json(EchoIn(text=t)) for t in ("weather Paris", "email Bob"))
    assert template.prompt(weather).hash == template.rendered_hash_json(weather)
    assert template.prompt(weather).hash == template.prompt(weather).hash
    assert template.prompt(weather).hash != template.prompt(email).hash
    assert template.prompt(weather).messages == template.render_json(weather)


def test_a_demo_retrieval_needs_a_pool_and_a_positive_k() -> None:
    with pytest.raises(ValueError):
        DemoRetrieval(pool=(), k=2)
    with pytest.raises(ValueError):
        DemoRetrieval(pool=POOL, k=0)


# -- the index is built once per policy, on the predict and the evaluate paths ------------------

HINT = {"user_handle": "x", "agent_name": "Auto"}
ROUTER_POOL = (
    Demo(
        id="rename",
        input={"message": "call me Sam", "blueprint_hint": HINT},
        output={"action": "tool", "tool": "user_update"},
    ),
    Demo(
        id="chat",
        input={"message": "thanks, that is all", "blueprint_hint": HINT},
        output={"action": "none"},
    ),
)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'eval.db'}")
    yield store
    store.close()


@pytest.fixture
def writer(store: Store) -> Iterator[ReceiptWriter]:
    w = ReceiptWriter(store)
    yield w
    w.close()


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    builds: list[int] = []
    original = retrieve.DemoRetriever.__init__

    def counting(self: retrieve.DemoRetriever, spec: DemoRetrieval) -> None:
        builds.append(len(spec.pool))
        original(self, spec)

    monkeypatch.setattr(retrieve.DemoRetriever, "__init__", counting)
    return builds


async def test_predict_builds_the_index_once_and_receipts_name_each_inputs_prompt(
    store: Store, writer: ReceiptWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = count_builds(monkeypatch)
    params = SELECT_TOOL.defaults.model_copy(
        update={"few_shot": (), "demo_retrieval": DemoRetrieval(pool=ROUTER_POOL, k=1)}
    ).with_model_id("scripted")
    artifact = Artifact.build(SELECT_TOOL, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(artifact.compiled_id, SELECT_TOOL_ID, artifact.model_dump(mode="json"))
    assert store.set_active(SELECT_TOOL_ID, artifact.compiled_id, expected=None, action="promote")
    seen: list[LMRequest] = []

    def answer(request: LMRequest) -> str:
        seen.append(request)
        return '{"action":"none"}'

    predictor = Predictor(store, ScriptedLM(answer), SignatureRegistry([SELECT_TOOL]), writer)
    messages = ["please call me Samantha", "thanks a lot", "please call me Samantha"]
    predictions = [
        await predictor.predict(SELECT_TOOL_ID, {"message": m, "blueprint_hint": HINT})
        for m in messages
    ]
    writer.flush()

    assert builds == [2]
    assert all(p.compiled_id == artifact.compiled_id for p in predictions)
    prompts = ["\n".join(m.content for m in r.messages) for r in seen]
    assert '"call me Sam"' in prompts[0] and '"thanks, that is all"' not in prompts[0]
    assert '"thanks, that is all"' in prompts[1] and '"call me Sam"' not in prompts[1]
    hashes = [p.receipt.hashes["rendered_prompt_hash"] for p in predictions]
    assert hashes[0] != hashes[1] and hashes[0] == hashes[2]
    stored = store.get_receipt(predictions[1].receipt_id)
    assert stored is not None
    assert stored.body["hashes"]["rendered_prompt_hash"] == hashes[1]


async def test_evaluation_builds_one_index_per_policy_across_batches(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = count_builds(monkeypatch)
    rows = [
        ExampleIn(
            example_id=f"r{i}",
            input={"message": f"call me Sam {i}", "blueprint_hint": HINT},
            expected={"action": "tool", "tool": "user_update"},
            split="train",
        )
        for i in range(6)
    ]
    sqlite_store.upsert_examples(SELECT_TOOL_ID, rows)
    version = sqlite_store.create_dataset_version(SELECT_TOOL_ID)
    examples = sqlite_store.dataset_examples(version.id, "train")
    lm = ScriptedLM([("call me", '{"action":"tool","tool":"user_update"}')])
    evaluator = Evaluator(sqlite_store, SELECT_TOOL, lm, exact_match_reward(), version.id)
    params = SELECT_TOOL.defaults.model_copy(
        update={"few_shot": (), "demo_retrieval": DemoRetrieval(pool=ROUTER_POOL, k=1)}
    ).with_model_id("scripted")
    candidate = Candidate.of(SELECT_TOOL, params, "retrieval")
    first = await evaluator.evaluate([candidate], examples[:3])
    second = await evaluator.evaluate([candidate], examples[3:])
    assert first[candidate.compiled_id].mean == second[candidate.compiled_id].mean == 1.0
    assert builds == [2]
