"""The help desk's triage agent: route each incoming ticket to a queue with dse, and report back
which queue resolved it, so tonight's canary counts real outcomes.

    python -m examples.support_triage.agent route --subject "Charged twice" --body "..." \\
        --customer cus_123 --ticket T-1001
    python -m examples.support_triage.agent route --file incoming.jsonl
    python -m examples.support_triage.agent resolve T-1001 billing
    python -m examples.support_triage.agent simulate examples/support_triage/data/tickets.jsonl

``route`` remembers which receipt routed each ticket (``--routes``, a JSONL file; a real desk keeps
it on the ticket). ``resolve`` sends feedback for that receipt. ``simulate`` does both for labeled
rows, treating each row's label as the queue that resolved it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import dse
from examples.support_triage.app import QUEUES, TRIAGE, Ticket, Triage, queue_credit

APP_SPEC = "examples.support_triage.app:app"
FEEDBACK_SOURCE = "ticket_resolved"
DEFAULT_ROUTES = Path(".dse") / "support_triage_routes.jsonl"


@dataclass(frozen=True)
class IncomingTicket:
    """One ticket as the help desk hands it over; ``label`` only on labeled (simulated) rows."""

    ticket_id: str
    customer_id: str
    subject: str
    body: str
    channel: str
    label: str | None = None

    def as_input(self) -> Ticket:
        return Ticket.model_validate(
            {"subject": self.subject, "body": self.body, "channel": self.channel}
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _connect(args) as client:
            if args.command == "route":
                return _route(client, _tickets_from_args(args), args.routes)
            if args.command == "resolve":
                return _resolve(client, args.ticket_id, args.queue, args.routes)
            return _simulate(client, args.file, args.split, args.limit)
    except (dse.DseError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- commands


def _route(client: dse.Client, tickets: Iterator[IncomingTicket], routes: Path) -> int:
    """Route each ticket; one that cannot be routed goes to people (exit code 1 at the end)."""
    failed = 0
    routes.parent.mkdir(parents=True, exist_ok=True)
    with routes.open("a", encoding="utf-8") as log:
        for ticket in tickets:
            try:
                p = client.predict(TRIAGE, ticket.as_input(), thread=ticket.customer_id)
            except (dse.DseError, ValidationError) as exc:
                failed += 1
                reason = " ".join(str(exc).split())[:200]
                print(
                    f"{ticket.ticket_id}\tunrouted: {type(exc).__name__}: {reason}", file=sys.stderr
                )
                continue
            queue = p.output_as(Triage).queue
            route = {"ticket_id": ticket.ticket_id, "receipt_id": p.receipt_id, "queue": queue}
            log.write(json.dumps(route) + "\n")
            print(f"{ticket.ticket_id}\t{queue}\t({p.source}, receipt {p.receipt_id})")
    return 1 if failed else 0


def _resolve(client: dse.Client, ticket_id: str, resolved_by: str, routes: Path) -> int:
    routed = _last_route(routes, ticket_id)
    if routed is None:
        print(f"error: no route for ticket {ticket_id!r} in {routes}", file=sys.stderr)
        return 1
    reward = _report_outcome(client, routed["receipt_id"], routed["queue"], resolved_by)
    print(f"{ticket_id}\trouted {routed['queue']}, resolved by {resolved_by}: reward {reward}")
    return 0


def _simulate(client: dse.Client, path: Path, split: str | None, limit: int | None) -> int:
    """Route labeled rows and report each label as the queue that resolved the ticket."""
    rewards: defaultdict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    for n, ticket in enumerate(_tickets_from_file(path, split)):
        if limit is not None and n >= limit:
            break
        if ticket.label is None:
            raise ValueError(f"{path}: ticket {ticket.ticket_id} has no label to simulate with")
        try:
            p = client.predict(TRIAGE, ticket.as_input(), thread=ticket.customer_id)
        except dse.DseError as exc:
            counts["unrouted"] += 1
            print(f"{ticket.ticket_id}\tunrouted: {type(exc).__name__}", file=sys.stderr)
            continue
        queue = p.output_as(Triage).queue
        arm: str = p.arm or p.source
        rewards[arm] += _report_outcome(client, p.receipt_id, queue, ticket.label)
        counts[arm] += 1
        print(f"{ticket.ticket_id}\t{queue}\t(label {ticket.label}, {arm})")
    for arm, count in sorted(counts.items()):
        print(f"{arm}: {count} tickets, mean reward {rewards[arm] / count:.3f}")
    return 0


def _report_outcome(client: dse.Client, receipt_id: str, routed: str, resolved_by: str) -> float:
    """Feedback on one routing: the reward compile uses, and the right queue when it was wrong."""
    reward = queue_credit(routed, resolved_by)
    correct = None if reward == 1.0 else Triage.model_validate({"queue": resolved_by})
    client.feedback(receipt_id, reward=reward, source=FEEDBACK_SOURCE, correct_output=correct)
    return reward


# --------------------------------------------------------------------------- plumbing


def _connect(args: argparse.Namespace) -> dse.Client:
    """The store, LM and token default to ``DSE_DATABASE_URL``, ``DSE_LM`` and
    ``DSE_PREDICT_TOKEN``, as for the ``dse`` command."""
    if args.base_url:
        return dse.connect(base_url=args.base_url, token=args.token)
    return dse.connect(db=args.db, lm=args.lm, app=APP_SPEC)


def _tickets_from_args(args: argparse.Namespace) -> Iterator[IncomingTicket]:
    if args.file is not None:
        yield from _tickets_from_file(args.file, None)
        return
    if not args.body:
        raise ValueError("route needs --body (and optionally --subject) or --file")
    yield IncomingTicket(
        ticket_id=args.ticket or f"T-{os.getpid()}",
        customer_id=args.customer,
        subject=args.subject,
        body=args.body,
        channel=args.channel,
    )


def _tickets_from_file(path: Path, split: str | None) -> Iterator[IncomingTicket]:
    """Read help desk tickets (``ticket_id, customer_id, subject, body, channel``) or dse dataset
    rows (``example_id, input, expected, meta.customer_id``) from a JSONL file."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if split is not None and row.get("split") != split:
            continue
        try:
            yield _ticket_from_row(row)
        except KeyError as exc:
            raise ValueError(f"{path}:{lineno}: missing field {exc}") from None


def _ticket_from_row(row: dict[str, Any]) -> IncomingTicket:
    if "input" in row:
        fields = row["input"]
        return IncomingTicket(
            ticket_id=row["example_id"],
            customer_id=(row.get("meta") or {}).get("customer_id", row["example_id"]),
            subject=fields.get("subject", ""),
            body=fields["body"],
            channel=fields.get("channel", "email"),
            label=(row.get("expected") or {}).get("queue"),
        )
    return IncomingTicket(
        ticket_id=row["ticket_id"],
        customer_id=row.get("customer_id", row["ticket_id"]),
        subject=row.get("subject", ""),
        body=row["body"],
        channel=row.get("channel", "email"),
        label=row.get("queue"),
    )


def _last_route(routes: Path, ticket_id: str) -> dict[str, Any] | None:
    if not routes.exists():
        return None
    found = None
    for line in routes.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["ticket_id"] == ticket_id:
            found = entry
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.support_triage.agent",
        description="Route support tickets with dse and report which queue resolved them.",
    )
    parser.add_argument("--db", help="store URL (default: DSE_DATABASE_URL, else ./.dse/dse.db)")
    parser.add_argument("--lm", help="LM spec (default: DSE_LM, else local:qwen2.5-coder-0.5b)")
    parser.add_argument("--base-url", help="call a dse server instead of the local store")
    parser.add_argument("--token", help="the server's predict token (default: DSE_PREDICT_TOKEN)")
    parser.add_argument(
        "--routes", type=Path, default=DEFAULT_ROUTES, help="where routed tickets are remembered"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    route = commands.add_parser("route", help="route tickets given as options or a JSONL file")
    route.add_argument("--file", type=Path, help="JSONL of tickets or dataset rows")
    route.add_argument("--ticket", help="ticket id (default: generated)")
    route.add_argument("--customer", default="anonymous", help="customer id (the sticky thread)")
    route.add_argument("--subject", default="")
    route.add_argument("--body")
    route.add_argument("--channel", choices=("email", "chat", "web_form"), default="email")

    resolve = commands.add_parser("resolve", help="report the queue that resolved a ticket")
    resolve.add_argument("ticket_id")
    resolve.add_argument("queue", choices=QUEUES)

    simulate = commands.add_parser(
        "simulate", help="route labeled rows and report each label as the resolving queue"
    )
    simulate.add_argument("file", type=Path, help="JSONL of labeled dataset rows")
    simulate.add_argument("--split", choices=("train", "holdout", "test"))
    simulate.add_argument("--limit", type=int)
    return parser


if __name__ == "__main__":
    sys.exit(main())
