"""Support triage: route one inbound customer ticket to the queue that should handle it.

This is the whole dse side of the example: one signature, its reward and the app that registers
them. dse loads it with ``--app examples.support_triage.app:app``; the agent that serves
customers (``agent.py``) imports ``TRIAGE`` from here and calls ``client.predict`` with it.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

import dse
from dse.eval import FormatValid, Outcome, RewardBundle, SignalScore
from dse.lm import LM
from dse.signature import DecodeParams, ModelParams
from dse.store import Store

TRIAGE_ID = "support/TriageTicket.v1"

Queue = Literal["billing", "technical", "account_access", "shipping", "returns", "sales", "none"]
QUEUES: tuple[str, ...] = get_args(Queue)

# Teams that sit together hand a misrouted ticket over within minutes; across families it bounces.
QUEUE_FAMILY: dict[str, str] = {
    "billing": "money",
    "sales": "money",
    "technical": "product",
    "account_access": "product",
    "shipping": "orders",
    "returns": "orders",
}
SAME_FAMILY_CREDIT = 0.25


class Ticket(BaseModel):
    """One inbound message as the help desk receives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(description="Email subject or web form title; empty for chat.")
    body: str = Field(min_length=1, description="The customer's message.")
    channel: Literal["email", "chat", "web_form"]


class Triage(BaseModel):
    """The queue that should handle the ticket, or ``none`` when nobody needs to act."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: Queue


_SYSTEM = (
    "You are the triage step of the Lumio support desk. Lumio sells smart lighting (bulbs, light "
    "strips, switches, sensors and the Lumio Hub), the Lumio app, the Lumio Plus subscription and "
    "Lumio for Business. You answer with JSON only."
)

# What each queue handles, as the instruction tells the model (and a menu of queues would).
QUEUE_DESCRIPTIONS: dict[str, str] = {
    "billing": "charges, invoices, payments, subscriptions",
    "technical": "the app, the hub, devices or integrations not working",
    "account_access": "logging in, passwords, two-factor, account changes",
    "shipping": "orders on their way, tracking, delivery",
    "returns": "returns, exchanges, damaged or faulty items, warranty",
    "sales": "prices, quotes and questions before buying",
}
_LISTED = [f"{name} ({what})" for name, what in QUEUE_DESCRIPTIONS.items()]
_INSTRUCTION = (
    "Read the customer's ticket and pick the queue that should handle it: "
    + ", ".join(_LISTED[:-1])
    + f" or {_LISTED[-1]}. If nobody needs to act on the message, like a thank-you, spam, an "
    "automatic reply or a message meant for another company, use none. "
    'Answer {"queue": "<queue>"}.'
)

TRIAGE: dse.Signature[Ticket, Triage] = dse.Signature(
    id=TRIAGE_ID,
    input_model=Ticket,
    output_model=Triage,
    prompt=dse.PromptBlocks(system=_SYSTEM, instruction=_INSTRUCTION),
    defaults=dse.Params(
        decode=DecodeParams(mode="constrained", max_repairs=1),
        model=ModelParams(temperature=0.0, max_tokens=32),
    ),
    description="Route an inbound support ticket to a queue, or to none.",
)


def queue_credit(predicted: str | None, expected: str) -> float:
    """1 for the right queue, partial credit for a queue in the same family, else 0.

    ``none`` has no family: ignoring a real ticket or queueing a thank-you both score 0.
    """
    if predicted == expected:
        return 1.0
    if predicted is None or predicted == "none" or expected == "none":
        return 0.0
    if QUEUE_FAMILY.get(predicted) == QUEUE_FAMILY.get(expected):
        return SAME_FAMILY_CREDIT
    return 0.0


class QueueMatch:
    """Reward signal: :func:`queue_credit` of the decoded queue against the label."""

    id = "queue_match"

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.expected is None:
            return SignalScore(0.0, "no label to compare with")
        expected = str(outcome.expected["queue"])
        if outcome.predicted is None:
            return SignalScore(0.0, f"no output ({outcome.error_name})")
        predicted = str(outcome.predicted.get("queue"))
        credit = queue_credit(predicted, expected)
        return SignalScore(credit, "" if credit == 1.0 else f"expected {expected}, got {predicted}")


# What compile, the gate and the exerciser score with; format validity is reported at weight 0.
TRIAGE_REWARD = RewardBundle(
    id="support/queue_match",
    version="1",
    signals=((QueueMatch(), 1.0), (FormatValid(), 0.0)),
)


def triage_reward(store: Store, lm: LM) -> RewardBundle:
    """The reward factory ``app.add`` takes; this reward needs neither the store nor an LM."""
    return TRIAGE_REWARD


app = dse.App("support")
app.add(TRIAGE, reward=triage_reward, dataset="data/tickets.jsonl")
