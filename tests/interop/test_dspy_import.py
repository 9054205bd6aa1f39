"""A DSPy 3.4 saved program imports as params of a matching signature and predicts with the
same instruction and demos; a file that does not fit is refused naming the file and the field,
and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dse._canonical import canonical_str
from dse.interop import DspyImportError, import_dspy_program, read_dspy_program
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Artifact, SignatureRegistry
from dse.store import Store

from ._route import COT_FILE, NESTED_ROUTE, PREDICT_FILE, ROUTE

TOOLS = ["set_user_name", "remember_note", "none"]


@pytest.fixture
def writer(store: Store) -> Iterator[ReceiptWriter]:
    w = ReceiptWriter(store)
    yield w
    w.close()


def _rows(store_url: str, table: str) -> int:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
    finally:
        engine.dispose()


async def test_a_dspy_predict_program_predicts_with_its_instruction_and_demos(
    store: Store, writer: ReceiptWriter
) -> None:
    saved = json.loads(PREDICT_FILE.read_text())
    result = import_dspy_program(store, ROUTE, PREDICT_FILE, model_id="scripted", activate=True)
    assert result.created
    assert result.activated is not None and result.activated.moved

    sent: list[LMRequest] = []

    def reply(request: LMRequest) -> str:
        sent.append(request)
        return '{"tool":"set_user_name"}'

    predictor = Predictor(store, ScriptedLM(reply), SignatureRegistry([ROUTE]), writer)
    prediction = await predictor.predict(ROUTE, {"message": "call me Bo", "tools": TOOLS})

    assert prediction.compiled_id == result.compiled_id
    assert prediction.source == "active"
    prompt = "\n".join(message.content for message in sent[0].messages)
    assert saved["signature"]["instructions"] in prompt
    assert "Pick a tool." not in prompt
    shown = [
        f"Input:\n{canonical_str({'message': d['message'], 'tools': d['tools']})}\n"
        f"Output: {canonical_str({'tool': d['tool']})}"
        for d in saved["demos"]
    ]
    assert len(shown) == 3
    positions = [prompt.index(demo) for demo in shown]
    assert positions == sorted(positions)


def test_the_artifact_names_where_it_came_from_and_a_second_import_is_a_no_op(
    store: Store,
) -> None:
    first = import_dspy_program(store, ROUTE, PREDICT_FILE, model_id="scripted")
    again = import_dspy_program(store, ROUTE, PREDICT_FILE, model_id="scripted")
    assert (first.created, again.created) == (True, False)
    assert again.compiled_id == first.compiled_id
    assert first.activated is None and store.get_active(ROUTE.id) is None
    body = store.get_artifact(first.compiled_id)
    assert body is not None
    artifact = Artifact.model_validate(body)
    artifact.verify_against(ROUTE)
    assert artifact.optimizer.id == "dspy_import"
    assert artifact.provenance["imported_from"] == "dspy"
    assert artifact.provenance["dspy_version"] == "3.4.1"
    assert artifact.provenance["file"] == PREDICT_FILE.name
    assert artifact.params.model.model_id == "scripted"
    assert [demo.output for demo in artifact.params.few_shot or ()] == [
        {"tool": "set_user_name"},
        {"tool": "remember_note"},
        {"tool": "none"},
    ]


def test_chain_of_thought_drops_its_reasoning_and_dspy_bookkeeping() -> None:
    program = read_dspy_program(COT_FILE, ROUTE)
    assert program.predictor == "predict"
    assert program.instruction == "Think about which tool the message asks for, then name it."
    assert program.dropped_fields == ("reasoning",)
    assert [demo.output for demo in program.demos] == [{"tool": "set_user_name"}, {"tool": "none"}]
    assert all(set(demo.input) == {"message", "tools"} for demo in program.demos)


def test_a_field_that_matches_no_signature_field_is_refused_and_nothing_is_written(
    store: Store, store_url: str
) -> None:
    with pytest.raises(DspyImportError) as refused:
        import_dspy_program(store, NESTED_ROUTE, PREDICT_FILE, model_id="scripted", activate=True)
    message = str(refused.value)
    assert message.startswith(f"{PREDICT_FILE}: signature.fields[0]: DSPy field 'message'")
    assert "input: request, tools" in message
    assert "--field message=input.PATH" in message
    assert _rows(store_url, "artifacts") == 0
    assert _rows(store_url, "pointer_history") == 0


def test_an_explicit_mapping_places_a_field_in_a_nested_input() -> None:
    program = read_dspy_program(
        PREDICT_FILE, NESTED_ROUTE, fields={"message": "input.request.message"}
    )
    assert program.demos[0].input == {"request": {"message": "please call me Ada"}, "tools": TOOLS}


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "program.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def _saved(**changes: Any) -> dict[str, Any]:
    return {**json.loads(PREDICT_FILE.read_text()), **changes}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        ([1, 2], "expected a JSON object (a DSPy program's saved state), found list"),
        ({"metadata": {}}, "no DSPy predictor state found"),
        (
            {"a": _saved(), "b.predict": _saved()},
            "the program has 2 predictors (a, b.predict); a dse signature is one of them",
        ),
        (_saved(signature={"fields": []}), "signature.instructions: expected a string"),
        (_saved(demos={"x": 1}), "demos: expected a list, found dict"),
        (
            _saved(demos=[{"message": "hi", "tools": "none", "tool": "none"}]),
            "demos[0] input does not match the signature: tools: Input should be a valid list",
        ),
        (
            _saved(demos=[{"message": "hi", "tools": [], "tool": "none", "mood": "ok"}]),
            "demos[0].mood: DSPy field 'mood' matches no top-level field of interop/Route.v1",
        ),
        (
            _saved(demos=[{"message": "hi", "tools": []}]),
            "demos[0] output does not match the signature: tool: Field required",
        ),
    ],
)
def test_a_bad_file_names_the_file_and_the_field_and_writes_nothing(
    store: Store, store_url: str, tmp_path: Path, document: Any, expected: str
) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(DspyImportError) as refused:
        import_dspy_program(store, ROUTE, path, model_id="scripted", activate=True)
    assert str(refused.value).startswith(f"{path}: ")
    assert expected in str(refused.value)
    assert _rows(store_url, "artifacts") == 0


def test_a_missing_file_and_a_bad_mapping_are_named(tmp_path: Path) -> None:
    with pytest.raises(DspyImportError, match="cannot read the file"):
        read_dspy_program(tmp_path / "absent.json", ROUTE)
    with pytest.raises(DspyImportError, match=r"'req' is not a field of interop/NestedRoute\.v1's"):
        read_dspy_program(PREDICT_FILE, NESTED_ROUTE, fields={"message": "input.req.message"})
