"""The per-value gate: a candidate better on average but worse on one expected output value by
more than ``max_value_regression`` is refused, with the value, n and delta named, on every path
(the gate, the service the CLI, API and loop call, the API's and CLI's settings)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dse.app import App
from dse.autopilot import SELECT_TOOL_ID
from dse.cli import app as cli_app
from dse.compile import compile_signature
from dse.eval import LabelFn
from dse.ops._policy import Settings
from dse.ops._remote import RemoteTransport
from dse.rollout import GateConfig, GateResult, gate
from dse.server._api_base import gate_config
from dse.server._api_models import GateSettings
from dse.service import GateRefusedError, start_gated_canary
from dse.store import Store
from tests.compile._route import ROUTE, profile
from tests.compile._values import N_HOLDOUT, breaks_half_of_a, seed


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[Store]:
    """The gate reads through the Store API; one backend is enough here."""
    store = Store.open(f"sqlite:///{db_path}")
    yield store
    store.close()


async def compiled(store: Store) -> str:
    seed(store)
    outcome = await compile_signature(store, ROUTE, breaks_half_of_a(), profile())
    return outcome.report.best_compiled_id


def gate_config_of(**settings: Any) -> GateConfig:
    return GateConfig(min_holdout=N_HOLDOUT, **settings)


def check(store: Store, best: str, **settings: Any) -> GateResult:
    return gate(store, ROUTE, breaks_half_of_a(), profile(), best, gate_config_of(**settings))


async def test_gate_refuses_a_candidate_that_breaks_one_value_and_names_it(
    sqlite_store: Store,
) -> None:
    best = await compiled(sqlite_store)
    # Off by default: the holdout gain (+0.5 over 60 rows) alone passes.
    result = check(sqlite_store, best)
    assert result.passed and len(result.reasons) == 1

    result = check(sqlite_store, best, max_value_regression=0.1)
    assert not result.passed
    [reason] = result.reasons
    assert reason.startswith("value 'label=a' (n = 20): 1.000 -> 0.500, delta -0.500")
    assert "--max-value-regression -0.100" in reason
    assert result.by_value is not None
    assert [v.value for v in result.by_value.values if v.regressed] == ["label=a"]


async def test_gate_passes_when_the_margin_or_the_value_size_allows(sqlite_store: Store) -> None:
    best = await compiled(sqlite_store)
    # The "a" rows lose 0.5, with an upper bound around -0.3: a 0.5 margin accepts that.
    result = check(sqlite_store, best, max_value_regression=0.5)
    assert result.passed, result.reasons
    assert "3 of 3 values judged" in result.reasons[1]
    # A value with fewer rows than --min-value-n is not judged.
    result = check(sqlite_store, best, max_value_regression=0.1, min_value_n=21)
    assert result.passed, result.reasons
    assert "0 of 3 values judged" in result.reasons[1]


async def test_a_report_stored_before_the_breakdown_is_judged_from_its_stored_results(
    sqlite_store: Store, db_path: Path
) -> None:
    best = await compiled(sqlite_store)
    [row] = sqlite_store.list_compile_reports(signature_id=ROUTE.id)
    body = dict(row.body)
    stored = body["holdout"].pop("by_value")
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "UPDATE compile_reports SET body = ? WHERE id = ?", (json.dumps(body), row.id)
        )
    assert "by_value" not in sqlite_store.get_compile_report(row.id).body["holdout"]  # type: ignore[union-attr]

    result = check(sqlite_store, best, max_value_regression=0.1)
    assert not result.passed and result.reasons[0].startswith("value 'label=a' (n = 20)")
    assert result.by_value is not None
    assert result.by_value.model_dump(mode="json") == stored


def route_app(label_of: LabelFn | None = None) -> App:
    """The Route signature registered as a user's app would, with the test profile's pieces."""
    app = App("values")
    route = profile()
    app.add(
        ROUTE,
        space=route.space,
        reward=route.reward,
        budget=route.budget,
        optimizer=route.optimizer,
        label_of=label_of,
    )
    return app


async def test_the_service_refuses_before_any_canary(sqlite_store: Store) -> None:
    best = await compiled(sqlite_store)
    config = gate_config_of(max_value_regression=0.1)
    with pytest.raises(GateRefusedError) as refused:
        start_gated_canary(sqlite_store, route_app(), breaks_half_of_a(), ROUTE.id, best, config)
    assert "value 'label=a' (n = 20)" in refused.value.message
    assert sqlite_store.get_canary(ROUTE.id) is None


async def test_label_of_given_to_app_add_groups_the_report(
    sqlite_store: Store,
) -> None:
    seed(sqlite_store)
    app = route_app(lambda output: "a" if output["label"] == "a" else "b or c")
    outcome = await compile_signature(
        sqlite_store, ROUTE, breaks_half_of_a(), app.profile(ROUTE.id)
    )
    by_value = outcome.report.holdout.by_value
    assert by_value is not None and by_value.key == "label_of"
    assert {v.value: v.n for v in by_value.values} == {"a": 20, "b or c": 40}


def test_every_gate_setting_reaches_the_gate_from_the_api_and_the_remote_loop() -> None:
    changed = GateConfig(min_delta=0.05, min_holdout=7, max_value_regression=0.2, min_value_n=3)
    assert set(changed.model_fields_set) == set(GateConfig.model_fields)
    settings = Settings(gate=changed, optimizer=None, budget=None, concurrency=1)
    sent = RemoteTransport._gate_settings(settings)
    assert gate_config(GateSettings.model_validate(sent)) == changed


def test_cli_gate_options_reach_the_overnight_config(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'dse.db'}"
    assert runner.invoke(cli_app, ["--db", url, "init"]).exit_code == 0
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"none"}'}) + "\n")
    options = ["--signature", SELECT_TOOL_ID, "--dataset", str(tmp_path / "missing.jsonl")]
    options += ["--max-value-regression", "0.15", "--min-value-n", "8"]  # stops at preflight
    result = runner.invoke(
        cli_app, ["--db", url, "--lm", f"scripted:{rules}", "--json", "overnight", *options]
    )
    assert result.exit_code == 1, result.output
    store = Store.open(url)
    [run] = store.list_ops_runs()
    store.close()
    assert run.state["config"]["gate"]["max_value_regression"] == 0.15
    assert run.state["config"]["gate"]["min_value_n"] == 8

    refused = runner.invoke(
        cli_app,
        ["--db", url, "canary", "start", "x/Sig.v1", "sha256:c", "--max-value-regression", "2"],
    )
    assert refused.exit_code == 2 and "--max-value-regression" in refused.output
