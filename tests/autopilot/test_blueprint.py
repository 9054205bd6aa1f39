"""The blueprint tools Autopilot runs after SelectTool picks one: simple, predictable rules."""

from __future__ import annotations

import json

import pytest

from dse.autopilot import (
    Blueprint,
    apply_tool,
    blueprint_from_json,
    extract_agent_name,
    extract_user_handle,
)


@pytest.mark.parametrize(
    ("message", "handle"),
    [
        ("call me Sam from now on", "Sam"),
        ("Sorry, I think I signed up with a typo. My name is actually Priya, not Pria.", "Priya"),
        ("Please stop calling me Christopher, everyone just calls me Kit.", "Kit"),
        ("I'd prefer to be addressed as Dr. Okafor in our conversations.", "Dr. Okafor"),
        ("cal me jojo pls, josephine is way too formal lol", "jojo"),
        ("so it's Mrs. Alvarez now instead of Mrs. Reyes.", "Mrs. Alvarez"),
        ("what's the weather like?", None),
    ],
)
def test_user_handle_extraction(message: str, handle: str | None) -> None:
    assert extract_user_handle(message) == handle


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ("call yourself Nova from now on", "Nova"),
        ("Your name is now Atlas.", "Atlas"),
        ("can u rename urself to Biscuit? autopilot is so boring", "Biscuit"),
        ("Let's change who you are: you're Marlowe now, a calm librarian type.", "Marlowe"),
        ("be more cheerful", None),
    ],
)
def test_agent_name_extraction(message: str, name: str | None) -> None:
    assert extract_agent_name(message) == name


def test_each_tool_changes_only_its_part_of_the_blueprint() -> None:
    start = Blueprint()
    named = apply_tool(start, "user_update", "call me Sam from now on")
    assert named.changed and named.blueprint.user_handle == "Sam"
    assert "Sam" in named.reply
    fact = apply_tool(start, "user_update", "my pronouns are they/them")
    assert fact.blueprint.user_handle == start.user_handle
    assert fact.blueprint.user_facts == ["my pronouns are they/them"]
    agent = apply_tool(named.blueprint, "identity_update", "Your name is now Atlas.")
    assert agent.blueprint.agent_name == "Atlas" and agent.blueprint.user_handle == "Sam"
    persona = apply_tool(agent.blueprint, "identity_update", "be a grumpy sea captain")
    assert persona.blueprint.persona == "be a grumpy sea captain"
    assert persona.blueprint.agent_name == "Atlas"
    rule = apply_tool(persona.blueprint, "character_update", "rule: no emojis")
    again = apply_tool(rule.blueprint, "character_update", "rule: no emojis")
    assert again.blueprint.character_rules == ["no emojis"] and not again.changed
    note = apply_tool(rule.blueprint, "memory_append", "remember that my car is silver")
    assert note.blueprint.memory_notes == ["my car is silver"]
    export = apply_tool(note.blueprint, "blueprint_export", "export my blueprint")
    assert not export.changed and export.attachment is not None
    data = json.loads(export.attachment)
    assert blueprint_from_json(data) == note.blueprint
    none = apply_tool(note.blueprint, None, "thanks!")
    assert none.blueprint == note.blueprint and not none.changed and none.attachment is None


def test_notes_are_capped_and_long_text_is_clipped() -> None:
    blueprint = Blueprint()
    for i in range(205):
        blueprint = apply_tool(blueprint, "memory_append", f"note {i}").blueprint
    assert len(blueprint.memory_notes) == 200 and blueprint.memory_notes[-1] == "note 204"
    long = apply_tool(Blueprint(), "character_update", "x" * 5000).blueprint
    assert len(long.character_rules[0]) == 500
