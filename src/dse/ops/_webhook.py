"""The run-finished webhook: when an ops run ends, POST what happened to the configured URLs.

Delivery never fails or holds up the run: each attempt is bounded by the webhook's timeout,
connection errors, timeouts, 429 and 5xx are retried a bounded number of times with doubling
backoff, and a delivery that still fails is recorded on the run's timeline as a ``warn`` event
naming only the URL's host (a Slack-style URL carries a token in its path; the signing secret is
never logged).

Signing, for receivers that must trust the body: with a secret, each POST carries

* ``X-DSE-Timestamp``: the Unix time in whole seconds when it was signed, and
* ``X-DSE-Signature``: ``sha256=`` + the hex HMAC-SHA256, keyed by the shared secret, of the bytes
  ``timestamp + "." + raw body``.

A receiver recomputes the HMAC over the raw body it received (before parsing it), compares with
:func:`hmac.compare_digest` and rejects a timestamp too far from its clock (five minutes here), so
a captured request cannot be replayed later; :func:`verify_signature` does exactly that.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from dse.app import App, Webhook, WebhookFormat
from dse.errors import DseError
from dse.ops._outcome import OUTCOME_LABELS
from dse.ops._report import RunReport, StoredRun, describe_run
from dse.store import OpsEventLevel

URL_ENV = "DSE_WEBHOOK_URL"
FORMAT_ENV = "DSE_WEBHOOK_FORMAT"
SECRET_ENV = "DSE_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-DSE-Signature"
TIMESTAMP_HEADER = "X-DSE-Timestamp"
EVENT_HEADER = "X-DSE-Event"
DELIVERY_HEADER = "X-DSE-Delivery"
RUN_FINISHED = "ops_run.finished"
#: How far a receiver lets a signed timestamp drift from its clock before refusing it.
REPLAY_TOLERANCE_S = 300
EventRecorder = Callable[[OpsEventLevel, str, dict[str, Any]], None]
_log = logging.getLogger(__name__)


class RunFinished(RunReport):
    """The generic webhook body: the run as the report describes it, plus its canary decision
    and its summary (without the per-step results, which the run page shows)."""

    event: Literal["ops_run.finished"] = "ops_run.finished"
    format_version: Literal[1] = 1
    decision: dict[str, Any] | None = None
    summary: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """How one webhook's delivery went."""

    target: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str = ""


def webhooks_from_env(env: Mapping[str, str] | None = None) -> list[Webhook]:
    """``DSE_WEBHOOK_URL`` (one URL, or several separated by commas or spaces), with
    ``DSE_WEBHOOK_FORMAT`` (``slack`` or ``generic``) and ``DSE_WEBHOOK_SECRET`` for all of them."""
    env = os.environ if env is None else env
    urls = env.get(URL_ENV, "").replace(",", " ").split()
    if not urls:
        return []
    format_ = env.get(FORMAT_ENV, "").strip() or "generic"
    if format_ not in get_args(WebhookFormat):
        raise DseError(
            f"{FORMAT_ENV}={format_!r} is not a webhook format: expected slack or generic"
        )
    secret = env.get(SECRET_ENV) or None
    webhooks = []
    for url in urls:
        try:
            webhooks.append(Webhook(url=url, format=format_, secret=secret))
        except ValidationError:
            raise DseError(
                f"{URL_ENV} holds {redact(url)!r}, which is not an http(s) URL"
            ) from None
    return webhooks


def configured_webhooks(app: App | None, env: Mapping[str, str] | None = None) -> list[Webhook]:
    """The app's webhooks and the environment's, each URL once (the app's settings first)."""
    found = [*(app.webhooks if app is not None else []), *webhooks_from_env(env)]
    unique: dict[str, Webhook] = {}
    for webhook in found:
        unique.setdefault(webhook.url, webhook)
    return list(unique.values())


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    *,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float | None = None,
    tolerance_s: float = REPLAY_TOLERANCE_S,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def run_finished_body(
    run: StoredRun, format_: WebhookFormat, *, pages_url: str | None = None
) -> bytes:
    """The POST body for a finished run in the webhook's format."""
    report = describe_run(run, pages_url=pages_url)
    if format_ == "slack":
        payload = slack_message(report)
    else:
        summary = {k: v for k, v in (run.summary or {}).items() if k != "steps"}
        payload = RunFinished(
            **report.model_dump(), decision=summary.get("decision"), summary=summary
        ).model_dump(mode="json")
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def slack_message(report: RunReport) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` for the notification, one block to read."""
    label = OUTCOME_LABELS[report.outcome]
    signatures = ", ".join(report.signature_ids) or "no signature"
    lines = [f"*{_escape(label.upper())}* `{_escape(signatures)}`", _escape(report.reason)]
    if report.holdout is not None:
        holdout = report.holdout
        ci = ""
        if holdout.ci_low is not None and holdout.ci_high is not None:
            ci = f" [{holdout.ci_low:+.3f}, {holdout.ci_high:+.3f}]"
        lines.append(f"compile holdout delta {holdout.delta:+.3f}{ci}")
    if report.canary_verdict:
        lines.append(f"canary: {_escape(report.canary_verdict)}")
    run = f"<{report.url}|{report.run_id}>" if report.url else f"`{report.run_id}`"
    lines.append(f"run {run}")
    return {
        "text": f"dse: {signatures} {label}: {report.reason}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


async def notify_run_finished(
    run: StoredRun,
    webhooks: Sequence[Webhook],
    *,
    record: EventRecorder,
    pages_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Delivery]:
    """Deliver the run-finished body to every webhook at once; record each outcome on the run's
    timeline (a failure as ``warn``). Never raises."""
    if not webhooks:
        return []
    try:
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            deliveries = await asyncio.gather(
                *(
                    _deliver(client, w, run_finished_body(run, w.format, pages_url=pages_url))
                    for w in webhooks
                )
            )
    except Exception as exc:
        deliveries = [
            Delivery(redact(w.url), False, 0, error=f"{type(exc).__name__}: {exc}")
            for w in webhooks
        ]
    for delivery in deliveries:
        _record(record, delivery)
    return deliveries


async def deliver(
    webhook: Webhook, body: bytes, *, transport: httpx.AsyncBaseTransport | None = None
) -> Delivery:
    """POST ``body`` to one webhook with its retries and timeout."""
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        return await _deliver(client, webhook, body)


async def _deliver(client: httpx.AsyncClient, webhook: Webhook, body: bytes) -> Delivery:
    target = redact(webhook.url)
    delivery_id = uuid.uuid4().hex
    delay = webhook.backoff_s
    status: int | None = None
    error = ""
    for attempt in range(1, webhook.attempts + 1):
        try:
            async with asyncio.timeout(webhook.timeout_s):
                response = await client.post(
                    webhook.url,
                    content=body,
                    headers=_headers(webhook, body, delivery_id),
                    timeout=webhook.timeout_s,
                )
            status = response.status_code
            if status < 300:
                return Delivery(target, True, attempt, status)
            error = f"HTTP {status}"
            if status != 429 and status < 500:
                return Delivery(target, False, attempt, status, error)
        except (httpx.HTTPError, TimeoutError) as exc:
            status = None
            error = _transport_error(exc, webhook.url)
        if attempt < webhook.attempts:
            await asyncio.sleep(delay)
            delay *= 2
    return Delivery(target, False, webhook.attempts, status, error)


def _headers(webhook: Webhook, body: bytes, delivery_id: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "user-agent": "dse-webhook/1",
        EVENT_HEADER: RUN_FINISHED,
        DELIVERY_HEADER: delivery_id,
    }
    if webhook.secret is not None:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(webhook.secret.get_secret_value(), timestamp, body)
    return headers


def _record(record: EventRecorder, delivery: Delivery) -> None:
    data = {
        "target": delivery.target,
        "delivered": delivery.delivered,
        "attempts": delivery.attempts,
        "status": delivery.status,
        **({"error": delivery.error} if delivery.error else {}),
    }
    if delivery.delivered:
        level: OpsEventLevel = "info"
        message = f"webhook delivered to {delivery.target} (HTTP {delivery.status})"
    else:
        level = "warn"
        message = (
            f"webhook to {delivery.target} not delivered after {delivery.attempts} "
            f"attempt(s): {delivery.error}"
        )
        _log.warning("%s", message)
    try:
        record(level, message, data)
    except Exception as exc:
        _log.warning("could not record the webhook delivery on the run: %s", exc)


def redact(url: str) -> str:
    """The URL's scheme and host only: the path of a chat webhook URL is its credential."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "an invalid URL"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{rest}"


def _transport_error(exc: BaseException, url: str) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}".replace(url, redact(url))


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
