"""Writes the long-thread dataset of ``autopilot/rlm/SummarizeThread.v1`` (and RecapThread.v1):
16 threads of 12k-40k characters, generated deterministically.

Each thread is a team chat whose routine messages are real text, sentences of SQLAlchemy's
docstrings (see ``bench/_corpus.py``: MIT License), as engineers would paste and discuss them.
Into that, three to four messages are planted that carry the story: a plan, a change to it with
its reason and a new owner and due date, and an item left open. The reference summary states
exactly those facts, so the pinned recap judge has a fair reference; the thread's other
messages are the haystack a small model must not drown in.

    python -m bench.summarize_threads > src/dse/autopilot/data/summarize_thread.jsonl
"""

from __future__ import annotations

import json
import random
import re
import sys
import textwrap
from typing import Any

from bench._corpus import SOURCE, paragraphs

QUESTION = "Summarize this thread: what was decided, who owns what, and what is still open?"
ROWS = 16
TRAIN = 10
SEED = 11

_PEOPLE = ("Marta", "Jonas", "Aiko", "Ravi", "Lena", "Tomás", "Priya", "Dana", "Kofi", "Sven")
_PROJECTS = (
    "the billing export",
    "the mobile 3.2 release",
    "the search reindex",
    "the EU data-center move",
    "the onboarding redesign",
    "the invoice API v2",
    "the nightly backup rewrite",
    "the partner dashboard",
)
_COMPONENTS = ("connection pool", "schema", "session cache", "ORM mapping", "query layer")
_REASONS = (
    "the load test found a deadlock in the connection pool",
    "legal has not signed off the data processing terms",
    "the vendor delayed the new database hosts by a week",
    "QA found data loss when a migration is retried",
    "the security review flagged plaintext credentials in the config",
)
_OPEN = (
    "who writes the rollback runbook",
    "the budget for the extra read replicas",
    "whether to email customers before the switch",
    "the on-call rota for launch week",
)
_DAYS = (
    "Monday 3 June",
    "Wednesday 5 June",
    "Friday 7 June",
    "Tuesday 11 June",
    "Thursday 13 June",
    "Monday 17 June",
    "Wednesday 19 June",
    "Friday 21 June",
)


def _sentences(chars: int) -> list[str]:
    """Corpus paragraphs flattened to single lines and cut to chat-message size."""
    out: list[str] = []
    for paragraph in paragraphs(chars):
        out.extend(textwrap.wrap(re.sub(r"\s+", " ", paragraph), 280))
    return out


def _row(index: int, rng: random.Random, pool: list[str]) -> dict[str, Any]:
    people = rng.sample(_PEOPLE, 4)
    lead, owner, reporter, other = people
    project = rng.choice(_PROJECTS)
    component = rng.choice(_COMPONENTS)
    reason = rng.choice(_REASONS)
    open_item = rng.choice(_OPEN)
    # Three days in order: the first ship date, the migration's due date, the new ship date.
    first, middle, last = sorted(rng.sample(range(len(_DAYS)), 3))
    planned, due_date, new_date = _DAYS[first], _DAYS[middle], _DAYS[last]
    target = rng.randint(12_000, 40_000)
    planted = [
        (
            0.12,
            f"{lead}: Plan for {project}: we ship on {planned}. {owner} owns the "
            f"{component} migration.",
        ),
        (0.48, f"{reporter}: Heads-up: {reason}. We can't make {planned}."),
        (
            0.55,
            f"{lead}: Agreed, {project} moves to {new_date}. {owner}, please finish the "
            f"{component} migration by {due_date}.",
        ),
        (0.83, f"{other}: Still open: {open_item}. Nobody has picked it up yet."),
    ]
    messages: list[str] = []
    total = 0
    while total < target:
        line = f"{rng.choice(people)}: {pool[rng.randrange(len(pool))]}"
        messages.append(line)
        total += len(line) + 1
    for at, line in planted:
        messages.insert(int(len(messages) * at), line)
    thread = "\n".join(messages)
    summary = (
        f"{project[0].upper()}{project[1:]} is now on {new_date} (it was planned for "
        f"{planned}) because {reason}. {owner} owns the {component} migration, due "
        f"{due_date}. Still open: {open_item}."
    )
    split = "train" if index < TRAIN else "holdout"
    return {
        "example_id": f"thread.{split}.{index:02d}",
        "input": {"question": QUESTION, "thread": thread},
        "expected": {"summary": summary},
        "split": split,
        "tags": ["kind:long_thread", f"chars:{len(thread) // 10_000 * 10}k"],
        "source": "generated",
        "meta": {"text": SOURCE, "generator": "bench/summarize_threads.py", "seed": SEED},
    }


def rows() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    pool = _sentences(400_000)
    return [_row(index, rng, pool) for index in range(ROWS)]


def main() -> None:
    for row in rows():
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
