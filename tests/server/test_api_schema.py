"""Schemathesis against the app's own OpenAPI document, over real HTTP with the admin token:
no 5xx and no response that the document does not describe (status, content type, headers,
body schema). A bounded number of examples per operation keeps it quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dse.autopilot import dataset_path
from dse.lm import ScriptedLM

from ._live import ADMIN, SELECT_TOOL, Live, build_app, live_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": False},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "generation": {"max-examples": 12},
    }
)
DOCUMENT = build_app("sqlite:///:memory:", lambda: ScriptedLM([], default="{}")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp("schema")
    with live_server(tmp, lambda: ScriptedLM([], default='{"action":"none"}')) as server:
        with server.client() as api:
            text = Path(dataset_path()).read_text()
            imported = api.post(
                f"/api/dse/signatures/{SELECT_TOOL}/examples:import", json={"jsonl": text}
            )
            assert imported.status_code == 200, imported.text
            predicted = api.post(
                f"/api/dse/signatures/{SELECT_TOOL}/predict",
                json={"input": {"message": "hi", "blueprint_hint": {"user_handle": "u"}}},
            )
            assert predicted.status_code in (200, 400), predicted.text
        yield server


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, live: Live) -> None:
    case.call_and_validate(
        base_url=live.base_url,
        headers={"authorization": f"Bearer {ADMIN}"},
        checks=CHECKS,
        timeout=30,
    )
