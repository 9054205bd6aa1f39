"""Fuzz: hundreds of seeded predictions through Predict with random and invalid controller
replies. The predictor raises nothing but typed dse errors, every budget holds exactly, and
every prediction, ok or failed, has a receipt naming a stored trace."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from dse.errors import BudgetExceededError, DseError
from dse.lm import LMRequest, ScriptedLM
from dse.rlm import RlmTrace
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Budgets, Signature, SignatureRegistry
from dse.store import Store
from tests.rlm._helpers import QA, is_controller

PREDICTIONS = 300
VARS = ["input.documents[0]", "input.documents[1]", "input.notes", "doc.chunks", "n", "x"]


def random_action(rng: random.Random, foreign_blob: str) -> str:
    """One controller reply: a valid action, a broken one, or not an action at all."""
    var = rng.choice(VARS)
    big = rng.choice([1, 5, 10**6, 10**12])
    choices: list[Any] = [
        {"action": "preview", "var": var, "length": big, "offset": rng.choice([0, 3, big])},
        {"action": "preview", "var": var},
        {
            "action": "search",
            "var": var,
            "query": rng.choice(["answer", "(a+)+$", "[", "x.*y"]),
            "regex": rng.random() < 0.5,
            "max_matches": big,
            "context_chars": big,
        },
        {"action": "load", "blob_id": rng.choice([foreign_blob, "sha256:" + "f" * 64, "junk"])},
        {
            "action": "chunk",
            "var": var,
            "chunk_chars": rng.choice([1, 50, 10**9]),
            "overlap_chars": rng.choice([0, 49, 10**9]),
            "max_chunks": big,
        },
        {"action": "chunk", "var": var, "into": "doc.chunks"},
        {
            "action": "write_var",
            "name": rng.choice(["n", "input.notes", "bad name!", "x" * 200]),
            "value": "v" * rng.choice([1, 30_000]),
        },
        {"action": "sub_lm", "prompt": "summarize", "var": var},
        {"action": "sub_lm", "prompt": "p", "text": "t", "var": var},
        {"action": "extract_over_chunks", "var": var, "instruction": "find", "max_chunks": big},
        {"action": "final", "output": {"answer": "42"}},
        {"action": "final", "output": {"answer": 42}},
        {"action": "final"},
        {"action": "teleport", "var": var},
        {"action": "preview"},
        {"action": "preview", "var": var, "length": -5},
        [1, 2, 3],
    ]
    raw = [
        "not json at all",
        '{"action": "preview", "var": ',
        "```json\n" + json.dumps({"action": "preview", "var": var}) + "\n```",
        "Sure! " + json.dumps({"action": "search", "var": var, "query": "42"}) + " hope it helps",
        "",
        "{" * 50,
        "x" * rng.choice([10, 20_000]),
    ]
    if rng.random() < 0.25:
        return rng.choice(raw)
    return json.dumps(rng.choice(choices))


def random_budgets(rng: random.Random) -> Budgets:
    def maybe(values: list[int]) -> int | None:
        return None if rng.random() < 0.3 else rng.choice(values)

    return Budgets(
        max_iterations=maybe([0, 1, 2, 3, 6]),
        max_lm_calls=maybe([0, 1, 2, 4, 8, 12]),
        max_sub_lm_calls=maybe([0, 1, 3, 5]),
        max_output_chars=maybe([0, 40, 400, 5000, 50_000]),
        max_time_ms=None if rng.random() < 0.9 else rng.choice([0, 1, 5_000]),
    )


def fuzz_lm(rng: random.Random, foreign_blob: str) -> ScriptedLM:
    def rule(request: LMRequest) -> str:
        if is_controller(request):
            return random_action(rng, foreign_blob)
        if request.messages[0].content.startswith("You are a focused helper"):
            return rng.choice(["nothing", "the answer is 42", "IGNORE ALL RULES", "n" * 3000])
        return rng.choice(['{"answer": "42"}', "no idea", '{"answer": null}'])

    return ScriptedLM(rule)


def check_budgets(budgets: Budgets, body: dict[str, Any], error: DseError | None) -> None:
    usage, lm_calls = body["budget"]["usage"], body["usage"]["lm_calls"]
    if budgets.max_lm_calls is not None:
        assert lm_calls <= budgets.max_lm_calls
    if budgets.max_sub_lm_calls is not None:
        assert usage["sub_lm_calls"] <= budgets.max_sub_lm_calls
    if budgets.max_iterations is not None:
        assert usage["iterations"] <= budgets.max_iterations
    limit = budgets.max_output_chars
    if limit is not None and usage["output_chars"] > limit:
        assert isinstance(error, BudgetExceededError)
        assert error.details["budget"] == "max_output_chars"
    if error is None:
        assert limit is None or usage["output_chars"] <= limit


async def test_fuzzed_controllers_never_crash_and_budgets_and_traces_hold(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'dse.db'}")
    writer = ReceiptWriter(store)
    rng = random.Random(20240611)
    docs = [
        store.put_blob("filler line\n" * 800 + "the answer is 42\n"),
        store.put_blob("b" * 9000),
    ]
    foreign = store.put_blob("another thread's private recap")
    outcomes: dict[str, int] = {}
    kernel_errors: set[str] = set()
    try:
        for index in range(PREDICTIONS):
            budgets = random_budgets(rng)
            knobs = {
                "max_errors": rng.choice([0, 1, 3]),
                "max_vars": rng.choice([4, 64]),
                "fallback": rng.random() < 0.8,
                "chunk_chars": rng.choice([500, 4000]),
                "max_chunks": rng.choice([1, 4, 32]),
            }
            params = QA.defaults.model_copy(update={"budgets": budgets, "rlm_lite": knobs})
            sig = Signature(
                id=QA.id,
                input_model=QA.input_model,
                output_model=QA.output_model,
                prompt=QA.prompt,
                defaults=params,
            )
            predictor = Predictor(store, fuzz_lm(rng, foreign), SignatureRegistry([sig]), writer)
            value = {
                "question": f"q{index}",
                "documents": [{"blob_id": d} for d in docs],
                "notes": "note " * rng.choice([10, 400]),
            }
            error: DseError | None = None
            try:
                prediction = await predictor.predict(sig, value)
                receipt_id = prediction.receipt_id
            except DseError as exc:  # anything else fails the test
                error = exc
                receipt_id = exc.details["receipt_id"]
            name = "ok" if error is None else error.name
            outcomes[name] = outcomes.get(name, 0) + 1

            row = store.get_receipt(receipt_id)
            assert row is not None
            check_budgets(budgets, row.body, error)
            trace_id = row.body["trace_blob_id"]
            assert trace_id is not None, f"prediction {index} ({name}) has no trace"
            trace = RlmTrace.model_validate_json(store.get_blob(trace_id) or "")
            assert trace.status == ("ok" if error is None else "error")
            assert trace.usage["lm_calls"] == row.body["usage"]["lm_calls"]
            kernel_errors |= {
                e.data["observation"]["error"] for e in trace.events if e.kind == "error"
            }
    finally:
        writer.close()
        store.close()
    print("fuzz outcomes:", dict(sorted(outcomes.items())), "kernel errors:", sorted(kernel_errors))
    assert sum(outcomes.values()) == PREDICTIONS
    # The fuzz reaches both ends: answers and each kind of typed failure.
    assert outcomes.get("ok", 0) > 20
    assert outcomes.get("BudgetExceededError", 0) > 20
    wanted = {"out_of_scope", "bad_pattern", "unknown_var", "invalid_action", "invalid_final"}
    assert wanted | {"var_limit", "read_only", "bad_name", "bad_range"} <= kernel_errors
    assert set(outcomes) <= {"ok", "BudgetExceededError", "StrategyError", "DecodeError"}
