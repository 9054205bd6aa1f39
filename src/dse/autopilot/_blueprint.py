"""The Autopilot blueprint: what the agent calls the user, its own name and persona, its standing
rules and its remembered notes; plus the blueprint tools that SelectTool routes messages to.

The tools are deliberately simple rules: the LM decides *which* tool a message asks for (that is
the signature dse improves); the tool then applies the message to the blueprint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse.autopilot._select_tool import BlueprintHint

MAX_RULES = 50
MAX_NOTES = 200
MAX_ITEM_CHARS = 500
MAX_NAME_CHARS = 60
DEFAULT_USER_HANDLE = "friend"
DEFAULT_AGENT_NAME = "Autopilot"

Tool = Literal[
    "user_update", "identity_update", "character_update", "memory_append", "blueprint_export"
]


class Blueprint(BaseModel):
    """One thread's blueprint; immutable: every tool returns a new one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["dse.autopilot.blueprint"] = "dse.autopilot.blueprint"
    format_version: Literal[1] = 1
    user_handle: str = Field(default=DEFAULT_USER_HANDLE, max_length=MAX_NAME_CHARS)
    user_facts: list[str] = Field(default_factory=list, max_length=MAX_NOTES)
    agent_name: str = Field(default=DEFAULT_AGENT_NAME, max_length=MAX_NAME_CHARS)
    persona: str | None = Field(default=None, max_length=MAX_ITEM_CHARS)
    character_rules: list[str] = Field(default_factory=list, max_length=MAX_RULES)
    memory_notes: list[str] = Field(default_factory=list, max_length=MAX_NOTES)

    def hint(self) -> BlueprintHint:
        """What SelectTool is told about the blueprint."""
        return BlueprintHint(user_handle=self.user_handle, agent_name=self.agent_name)

    def export_json(self) -> str:
        """The blueprint as pretty JSON, for the user to keep or import elsewhere."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class ToolOutcome:
    blueprint: Blueprint
    reply: str
    changed: bool
    attachment: str | None = None


def apply_tool(blueprint: Blueprint, tool: str | None, message: str) -> ToolOutcome:
    """Run the chosen blueprint tool (or none) on ``message``."""
    text = " ".join(message.split())
    if tool == "user_update":
        return _user_update(blueprint, text)
    if tool == "identity_update":
        return _identity_update(blueprint, text)
    if tool == "character_update":
        rule = _clip(_strip_prefix(text, _RULE_PREFIXES))
        if not rule:
            return ToolOutcome(
                blueprint, "That rule was empty, so I left my rules as they were.", False
            )
        rules = _append_unique(blueprint.character_rules, rule, MAX_RULES)
        updated = blueprint.model_copy(update={"character_rules": rules})
        return ToolOutcome(
            updated, f"New rule noted: “{rule}”.", rules != blueprint.character_rules
        )
    if tool == "memory_append":
        note = _clip(_strip_prefix(text, _NOTE_PREFIXES))
        if not note:
            return ToolOutcome(blueprint, "There was nothing to remember in that.", False)
        notes = _append_unique(blueprint.memory_notes, note, MAX_NOTES)
        updated = blueprint.model_copy(update={"memory_notes": notes})
        return ToolOutcome(updated, f"I'll remember: “{note}”.", notes != blueprint.memory_notes)
    if tool == "blueprint_export":
        return ToolOutcome(
            blueprint,
            "Here is my blueprint as JSON.",
            False,
            attachment=blueprint.export_json(),
        )
    return ToolOutcome(
        blueprint,
        f"{blueprint.agent_name} here, {blueprint.user_handle}. That message doesn't ask me to "
        "change anything in my blueprint, so I left it as it is.",
        False,
    )


# -- user_update ------------------------------------------------------------------------------

_NAME = r"(?P<name>(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\. )?[^,.;:!?()\"]{1,80})"
_USER_PATTERNS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"(?<!stop )\b(?:call|cal|kall|calling) me (?:as |just )?{_NAME}",
        rf"\baddress(?:ed)? (?:me )?as {_NAME}",
        rf"\brefer to me as {_NAME}",
        rf"\bmy name is (?:actually |now |really )?{_NAME}",
        rf"\bmy name'?s (?:actually |now )?{_NAME}",
        rf"\b(?:update|change) my (?:name|naem|handle) to {_NAME}",
        rf"\b(?:everyone|people|friends) (?:just )?calls? me {_NAME}",
        rf"\bI (?:go|prefer to go) by {_NAME}",
        rf"\bmy first name,? {_NAME}",
        rf"\bI(?:'m| am) {_NAME}(?=,? not\b|,? by the way)",
        r"\bit'?s ((?:Dr|Mr|Mrs|Ms|Mx)\. [^,.;:!?()\"]{1,40}) now",
    )
)
# Words that end a name inside a longer sentence.
_NAME_STOPS = re.compile(
    r"\s+(?:from now on|instead|in our|in future|going forward|if |please\w*|pls|plz|thanks|lol|"
    r"not |rather|than |short for|for short|now|from here|okay|ok|is way|and |but |because|since|"
    r"when |everywhere|too|these days|with |when |that |when talking|to introduce)\b.*$",
    re.IGNORECASE,
)
_NOT_NAMES = frozenset({"a", "an", "the", "more", "less", "from", "so", "just", "really", "going"})


def extract_user_handle(message: str) -> str | None:
    """What the user asks to be called, by simple patterns ("call me Sam", "my name is Priya")."""
    for pattern in _USER_PATTERNS:
        match = pattern.search(message)
        if match:
            name = _clean_name(match.group(1))
            if name:
                return name
    return None


def _user_update(blueprint: Blueprint, text: str) -> ToolOutcome:
    handle = extract_user_handle(text)
    if handle is not None:
        updated = blueprint.model_copy(update={"user_handle": handle})
        return ToolOutcome(
            updated, f"Got it, I'll call you {handle} from now on.", handle != blueprint.user_handle
        )
    fact = _clip(text)
    facts = _append_unique(blueprint.user_facts, fact, MAX_NOTES)
    updated = blueprint.model_copy(update={"user_facts": facts})
    return ToolOutcome(
        updated,
        f"Noted about you, {blueprint.user_handle}: “{fact}”.",
        facts != blueprint.user_facts,
    )


# -- identity_update --------------------------------------------------------------------------

_AGENT_PATTERNS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\bhow about {_NAME}\?",
        rf"\bcall (?:yourself|urself) {_NAME}",
        rf"\brename (?:yourself|urself|you) (?:to |as )?{_NAME}",
        rf"\brefer to (?:yourself|urself) as {_NAME}",
        rf"\b(?:your|ur) name (?:is|should be|to be) (?:now |going to be )?{_NAME}",
        rf"\bnew name for you:? {_NAME}",
        rf"\btake the name {_NAME}",
        rf"\bbe called {_NAME}",
        rf"\bnamed {_NAME}",
        rf"\b(?:you could |you can |you should |for you to )?go by {_NAME}",
        rf"\bfrom now on,? you(?:'re| are) {_NAME}",
        rf"\byou(?:'re| are) {_NAME} now",
    )
)


def extract_agent_name(message: str) -> str | None:
    """The name the user gives the agent ("call yourself Nova", "your name is now Atlas")."""
    for pattern in _AGENT_PATTERNS:
        match = pattern.search(message)
        if match:
            name = _clean_name(match.group("name"))
            if name:
                return name
    return None


def _identity_update(blueprint: Blueprint, text: str) -> ToolOutcome:
    name = extract_agent_name(text)
    if name is not None:
        updated = blueprint.model_copy(update={"agent_name": name})
        return ToolOutcome(updated, f"From now on my name is {name}.", name != blueprint.agent_name)
    persona = _clip(text)
    updated = blueprint.model_copy(update={"persona": persona})
    return ToolOutcome(
        updated, f"Understood, my persona is now: “{persona}”.", persona != blueprint.persona
    )


# -- helpers ----------------------------------------------------------------------------------

_RULE_PREFIXES = ("rule:", "new rule:", "set a boundary:", "hard rule:")
_NOTE_PREFIXES = (
    "please remember that",
    "please remember",
    "remember that",
    "remember",
    "remeber that",
    "remeber",
    "don't forget that",
    "don't forget:",
    "don't forget",
    "make a note that",
    "make a note:",
    "note that",
    "note:",
    "please note that",
    "please note",
    "jot this down:",
    "for future reference,",
)


def _strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    lowered = text.lower()
    for prefix in prefixes:
        if lowered.startswith(prefix):
            return text[len(prefix) :].strip(" :,")
    return text.strip()


def _clean_name(raw: str) -> str:
    name = _NAME_STOPS.sub("", raw.strip()).strip(" '\"-")
    words = name.split()
    if not words or len(words) > 4 or words[0].lower() in _NOT_NAMES:
        return ""
    return " ".join(words)[:MAX_NAME_CHARS]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"


def _append_unique(items: list[str], item: str, cap: int) -> list[str]:
    if item in items:
        return list(items)
    return [*items, item][-cap:]


def blueprint_from_json(data: dict[str, Any]) -> Blueprint:
    """Read an exported blueprint back."""
    return Blueprint.model_validate(data)
