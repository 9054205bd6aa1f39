"""``dse export-otel`` and ``dse import-dspy`` from the command line, on a user's app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app
from tests.interop._collector import Collector, attributes, otlp_collector
from tests.interop._route import NESTED_ROUTE, PREDICT_FILE, ROUTE

runner = CliRunner()
APP = ["--app", "tests.interop._route:app"]
INPUT = json.dumps({"message": "call me Ada", "tools": ["set_user_name", "none"]})


@pytest.fixture
def base(tmp_path: Path) -> list[str]:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"tool":"set_user_name"}'}) + "\n")
    return ["--db", f"sqlite:///{tmp_path / 'dse.db'}", "--lm", f"scripted:{rules}", *APP]


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    with otlp_collector() as running:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.url)
        yield running


def test_import_dspy_activates_and_predict_serves_it(base: list[str]) -> None:
    imported = runner.invoke(
        app, [*base, "--json", "import-dspy", ROUTE.id, str(PREDICT_FILE), "--activate"]
    )
    assert imported.exit_code == 0, imported.output
    payload = json.loads(imported.output)
    assert payload["created"] is True
    assert payload["activated"]["to_compiled_id"] == payload["compiled_id"]
    assert len(payload["program"]["demos"]) == 3

    predicted = runner.invoke(app, [*base, "--json", "predict", ROUTE.id, "--input", INPUT])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)["compiled_id"] == payload["compiled_id"]


def test_import_dspy_of_a_mismatching_signature_is_one_line_and_writes_nothing(
    base: list[str],
) -> None:
    refused = runner.invoke(app, [*base, "import-dspy", NESTED_ROUTE.id, str(PREDICT_FILE)])
    assert refused.exit_code == 1
    assert "DSPy field 'message' matches no top-level field" in refused.stderr
    assert "Traceback" not in refused.output
    history = runner.invoke(app, [*base, "--json", "history", NESTED_ROUTE.id])
    assert json.loads(history.output)["history"] == []

    mapping = ["--field", "message=input.request.message"]
    mapped = runner.invoke(
        app, [*base, "import-dspy", NESTED_ROUTE.id, str(PREDICT_FILE), *mapping]
    )
    assert mapped.exit_code == 0, mapped.output
    assert "3 demo(s)" in mapped.output


def test_export_otel_sends_the_receipts_to_the_standard_endpoint(
    base: list[str], collector: Collector
) -> None:
    for _ in range(2):
        predicted = runner.invoke(app, [*base, "predict", ROUTE.id, "--input", INPUT])
        assert predicted.exit_code == 0, predicted.output
    exported = runner.invoke(
        app, [*base, "--json", "export-otel", "--signature", ROUTE.id, "--since", "1h"]
    )
    assert exported.exit_code == 0, exported.output
    payload = json.loads(exported.output)
    assert payload["spans"] == 2
    assert payload["endpoint"] == f"{collector.url}/v1/traces"
    spans = [attributes(span.attributes) for _, span in collector.spans()]
    assert {span["gen_ai.provider.name"] for span in spans} == {"dse.scripted"}
    assert {span["dse.signature_id"] for span in spans} == {ROUTE.id}


def test_export_otel_without_an_endpoint_says_how_to_give_one(
    base: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    refused = runner.invoke(app, [*base, "export-otel"])
    assert refused.exit_code == 1
    assert "no OTLP endpoint: pass --endpoint URL or set OTEL_EXPORTER_OTLP_ENDPOINT" in (
        refused.stderr
    )
