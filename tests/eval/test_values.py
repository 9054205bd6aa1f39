"""The holdout comparison per expected output value: which value a row has (a one-field label, a
compound output, a categorical field beside free text, none for free text, an app's own key),
and each value's paired delta and recall."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.eval import OTHER_OUTPUTS, paired_bootstrap, value_breakdown, value_key
from dse.signature import PromptBlocks, Signature

from ..compile._route import ROUTE

SELECT_TOOL = autopilot_app.signatures.get(SELECT_TOOL_ID)
NONE = {"action": "none"}
USER = {"action": "tool", "tool": "user_update"}
EXPORT = {"action": "tool", "tool": "blueprint_export"}


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class Triage(BaseModel):
    """A categorical field beside a free-text one."""

    model_config = ConfigDict(extra="forbid")
    urgency: Literal["low", "high"]
    team: str
    reply: str


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str


def signature(output: type[BaseModel]) -> Signature[Text, BaseModel]:
    return Signature(
        id=f"test/{output.__name__}.v1",
        input_model=Text,
        output_model=output,
        prompt=PromptBlocks(),
    )


def test_a_one_field_label_groups_by_its_value_even_on_too_few_rows_to_repeat() -> None:
    key = value_key(ROUTE, [{"label": "a"}, {"label": "b"}, {"label": "c"}])
    assert key is not None and key.key == "output"
    assert key.label({"label": "b"}) == "label=b"
    assert key.label(None) is None


def test_a_compound_output_groups_by_the_whole_output_and_deltas_are_per_value() -> None:
    # Control gets every "none" right and no tool; the candidate fixes both tools but answers
    # "none" to only one of four "none" rows: better overall, worse on "none".
    expected = {
        **{f"none-{i}": NONE for i in range(4)},
        **{f"user-{i}": USER for i in range(3)},
        **{f"export-{i}": EXPORT for i in range(3)},
    }
    control = {k: 1.0 if k.startswith("none") else 0.0 for k in expected}
    candidate = {k: 0.0 if k in ("none-1", "none-2", "none-3") else 1.0 for k in expected}
    control_predicted = dict.fromkeys(expected, NONE)
    candidate_predicted = {k: USER if k.startswith("none") else v for k, v in expected.items()}
    candidate_predicted.update({"none-0": NONE, "export-0": USER, "export-1": USER})

    breakdown = value_breakdown(
        SELECT_TOOL,
        expected,
        control,
        candidate,
        control_predicted=control_predicted,
        candidate_predicted=candidate_predicted,
        seed=7,
    )

    assert breakdown.key == "output"
    by_value = {v.value: v for v in breakdown.values}
    assert sorted(by_value) == [
        "action=none",
        "action=tool, tool=blueprint_export",
        "action=tool, tool=user_update",
    ]
    none = by_value["action=none"]
    assert (none.n, none.paired.control_mean, none.paired.candidate_mean) == (4, 1.0, 0.25)
    assert none.paired.delta == -0.75 and none.paired.losses == 3
    assert none.paired == paired_bootstrap([1.0] * 4, [1.0, 0.0, 0.0, 0.0], seed=7)
    assert (none.control_recall, none.candidate_recall) == (1.0, 0.25)
    user = by_value["action=tool, tool=user_update"]
    assert user.paired.delta == 1.0 and user.paired.ci_low == 1.0
    assert (user.control_recall, user.candidate_recall) == (0.0, 1.0)
    # Recall reads the answers, not the rewards: all export rows were rewarded (as a lenient
    # reward might), but two of them were answered user_update.
    assert by_value["action=tool, tool=blueprint_export"].candidate_recall == round(1 / 3, 4)
    # Significantly worse (the whole interval below zero) is marked; better is not.
    assert none.regressed and not user.regressed
    assert [r["regressed"] for r in breakdown.rows()] == [True, False, False]


def test_too_many_distinct_outputs_fall_back_to_the_most_informative_categorical_field() -> None:
    triage = signature(Triage)
    rows = [
        {"urgency": "high" if i % 3 == 0 else "low", "team": f"t{i % 2}", "reply": f"reply {i}"}
        for i in range(30)
    ]
    key = value_key(triage, rows)
    # "urgency" is a Literal, but "team" splits 15/15 (more entropy than urgency's 10/20).
    assert key is not None and key.key == "field:team"
    assert key.label(rows[1]) == "team=t1"
    assert "too many to group by" in key.rule

    one_team = [{**row, "team": "support"} for row in rows]
    key = value_key(triage, one_team)
    assert key is not None and key.key == "field:urgency"
    expected = {f"r{i}": row for i, row in enumerate(one_team)}
    breakdown = value_breakdown(triage, expected, dict.fromkeys(expected, 0.0), {})
    assert breakdown.values == []  # nothing was scored on both sides


def test_free_text_has_no_values_and_says_why() -> None:
    summary = signature(Summary)
    expected = {f"r{i}": {"summary": f"a different summary {i}"} for i in range(12)}
    assert value_key(summary, list(expected.values())) is None
    scores = dict.fromkeys(expected, 1.0)
    breakdown = value_breakdown(summary, expected, scores, scores)
    assert breakdown.key == "none" and breakdown.values == []
    assert "not broken down" in breakdown.rule


def test_repeated_free_text_outputs_are_values_all_the_same() -> None:
    summary = signature(Summary)
    rows = [{"summary": ["yes", "no", "maybe"][i % 3]} for i in range(12)]
    key = value_key(summary, rows)
    assert key is not None and key.key == "output" and key.label(rows[2]) == "summary=maybe"


class Call(BaseModel):
    model_config = ConfigDict(extra="forbid")
    function: str


def test_a_recurring_abstention_is_a_value_beside_tools_each_named_once() -> None:
    """A router over the functions each input lists: 60 rows name 42 functions once each and
    18 say "none". Too many outputs to group, no categorical field, yet "none" recurs: it is
    a value of its own, the rest pooled, so a lost abstention shows and can be gated."""
    call = signature(Call)
    expected = {f"r{i}": {"function": "none" if i % 10 < 3 else f"tool_{i}"} for i in range(60)}
    key = value_key(call, list(expected.values()))
    assert key is not None and key.key == "recurring"
    assert "pooled" in key.rule
    assert key.label({"function": "none"}) == "function=none"
    assert key.label({"function": "tool_7"}) == OTHER_OUTPUTS
    assert key.label(None) is None

    none_rows = {k for k, v in expected.items() if v["function"] == "none"}
    control = {k: 1.0 if k in none_rows else 0.0 for k in expected}
    candidate = {k: 0.0 if k in none_rows else 1.0 for k in expected}
    breakdown = value_breakdown(
        call,
        expected,
        control,
        candidate,
        control_predicted={k: {"function": "none"} for k in expected},
        candidate_predicted=dict(expected) | {k: {"function": "tool_1"} for k in none_rows},
    )
    by_value = {v.value: v for v in breakdown.values}
    assert sorted(by_value) == [OTHER_OUTPUTS, "function=none"]
    none, other = by_value["function=none"], by_value[OTHER_OUTPUTS]
    assert (none.n, none.paired.delta, none.control_recall, none.candidate_recall) == (
        18,
        -1.0,
        1.0,
        0.0,
    )
    assert none.regressed
    assert (other.n, other.paired.delta, other.control_recall) == (42, 1.0, None)


def test_an_apps_label_of_groups_expected_and_predicted_outputs() -> None:
    def abstains(output: dict[str, str]) -> str:
        return "abstain" if output["action"] == "none" else "acts"

    expected = {"n": NONE, "u": USER, "e": EXPORT}
    breakdown = value_breakdown(
        SELECT_TOOL,
        expected,
        {"n": 0.0, "u": 1.0, "e": 1.0},
        {"n": 1.0, "u": 0.0, "e": 1.0},
        candidate_predicted={"n": NONE, "u": EXPORT, "e": EXPORT},
        label_of=abstains,
    )
    assert breakdown.key == "label_of"
    acts = {v.value: v for v in breakdown.values}["acts"]
    assert (acts.n, acts.paired.delta, acts.candidate_recall, acts.control_recall) == (
        2,
        -0.5,
        1.0,
        None,
    )
