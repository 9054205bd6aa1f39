"""The run-finished webhook: a finished run is POSTed to a real local receiver in both formats,
signed so the receiver can check it; a 500 is retried; a receiver that never answers costs the run
a bounded wait and a warn event that names neither the secret nor the URL's path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dse.app import App, Webhook
from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.errors import DseError
from dse.lm import ScriptedLM
from dse.ops import (
    EmbeddedLoop,
    configured_webhooks,
    notify_run_finished,
    run_overnight,
    run_remote_overnight,
    verify_signature,
    webhooks_from_env,
)
from dse.ops._webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver
from dse.store import OpsRunRow, Store

from ._child import config
from ._receiver import receiver, url

SECRET = "s3cret-shared-with-the-receiver"


def _flat() -> ScriptedLM:
    """Answers none to everything: compile finds nothing better and the gate refuses."""
    return ScriptedLM([], default='{"action":"none"}')


def _header(headers: dict[str, str], name: str) -> str:
    return {k.lower(): v for k, v in headers.items()}[name.lower()]


async def test_a_finished_run_posts_both_formats_signed_with_the_secret(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    with receiver() as server:
        hooks = [
            Webhook(url=url(server, "/generic"), format="generic", secret=SECRET),
            Webhook(url=url(server, "/slack"), format="slack", secret=SECRET),
        ]
        summary = await run_overnight(
            store,
            EmbeddedLoop(store, autopilot_app, _flat()),
            config(),
            webhooks=hooks,
            pages_url="https://dse.example.org/",
        )
        received = {r.path: r for r in server.received}
    assert summary["outcome"] == "refused_at_gate"
    assert set(received) == {"/generic", "/slack"}
    for post in received.values():
        assert verify_signature(
            SECRET,
            timestamp=_header(post.headers, TIMESTAMP_HEADER),
            signature=_header(post.headers, SIGNATURE_HEADER),
            body=post.body,
        )
        assert not verify_signature(
            "another secret",
            timestamp=_header(post.headers, TIMESTAMP_HEADER),
            signature=_header(post.headers, SIGNATURE_HEADER),
            body=post.body,
        )

    generic = json.loads(received["/generic"].body)
    assert generic["event"] == "ops_run.finished"
    assert generic["run_id"] == summary["run_id"]
    assert generic["status"] == "finished"
    assert generic["outcome"] == "refused_at_gate"
    assert generic["exit_code"] == 3
    assert generic["signature_ids"] == [SELECT_TOOL_ID]
    assert generic["reason"] == "; ".join(summary["gate"]["reasons"])
    assert generic["decision"] is None
    assert generic["summary"]["gate"]["passed"] is False and "steps" not in generic["summary"]
    assert generic["url"] == f"https://dse.example.org/dse/runs/{summary['run_id']}"

    slack = json.loads(received["/slack"].body)
    assert slack["text"].startswith(f"dse: {SELECT_TOOL_ID} refused at gate: ")
    [block] = slack["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    assert "*REFUSED AT GATE*" in block["text"]["text"]
    assert f"<{generic['url']}|{summary['run_id']}>" in block["text"]["text"]

    events = [e for e in store.list_ops_events(summary["run_id"]) if e.phase == "notify"]
    assert [e.level for e in events] == ["info", "info"]
    store.close()


async def test_resuming_a_finished_run_that_told_nobody_tells_the_webhooks_once(
    tmp_path: Path,
) -> None:
    # A runner killed between finishing the record and posting leaves a finished run with no
    # notify event; resuming it delivers, and a second resume does not deliver again.
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    first = await run_overnight(store, EmbeddedLoop(store, autopilot_app, _flat()), config())
    run_id = first["run_id"]
    assert not [e for e in store.list_ops_events(run_id) if e.phase == "notify"]
    with receiver() as server:
        hooks = [Webhook(url=url(server, "/generic"), format="generic")]
        for _ in range(2):
            again = await run_overnight(
                store,
                EmbeddedLoop(store, autopilot_app, _flat()),
                config(),
                resume=run_id,
                webhooks=hooks,
            )
            assert again == first
        received = list(server.received)
    assert [json.loads(post.body)["run_id"] for post in received] == [run_id]
    notified = [e for e in store.list_ops_events(run_id) if e.phase == "notify"]
    assert [e.level for e in notified] == ["info"]
    store.close()


def test_a_replayed_or_altered_body_fails_verification() -> None:
    from dse.ops import sign

    body = b'{"outcome":"promoted"}'
    sent = str(int(time.time()))
    signature = sign(SECRET, sent, body)
    assert verify_signature(SECRET, timestamp=sent, signature=signature, body=body)
    assert not verify_signature(SECRET, timestamp=sent, signature=signature, body=body + b" ")
    later = time.time() + 3600
    assert not verify_signature(SECRET, timestamp=sent, signature=signature, body=body, now=later)
    assert not verify_signature(SECRET, timestamp="soon", signature=signature, body=body)


async def test_a_500_is_retried_and_the_next_attempt_delivers() -> None:
    with receiver((500, 200)) as server:
        hook = Webhook(url=url(server), secret=SECRET, backoff_s=0.01)
        delivery = await deliver(hook, b"{}")
        received = list(server.received)
    assert delivery.delivered and delivery.attempts == 2 and delivery.status == 200
    assert len(received) == 2
    first, second = (_header(r.headers, "X-DSE-Delivery") for r in received)
    assert first == second  # one delivery, two attempts


async def test_a_4xx_is_not_retried() -> None:
    with receiver((404,)) as server:
        delivery = await deliver(Webhook(url=url(server), backoff_s=0.01), b"{}")
        assert len(server.received) == 1
    assert not delivery.delivered and delivery.status == 404 and delivery.error == "HTTP 404"


async def test_a_receiver_that_never_answers_does_not_hold_the_run(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    with receiver(hang=True) as server:
        hook = Webhook(
            url=url(server, "/services/T000/B000/tokenpart"),
            format="slack",
            secret=SECRET,
            timeout_s=0.5,
            attempts=2,
            backoff_s=0.05,
        )
        summary = await run_overnight(
            store, EmbeddedLoop(store, autopilot_app, _flat()), config(), webhooks=[hook]
        )
        attempts = len(server.received)
    assert summary["ok"] is True and summary["outcome"] == "refused_at_gate"
    run = store.get_ops_run(summary["run_id"])
    assert run is not None and run.status == "finished"
    assert attempts == 2
    events = store.list_ops_events(summary["run_id"])
    [finish] = [e for e in events if e.phase == "finish"]
    [warned] = [e for e in events if e.phase == "notify"]
    waited = (warned.ts - finish.ts).total_seconds()
    assert waited < 3, waited  # two attempts of at most 0.5 s each, and the backoff between
    assert warned.level == "warn"
    assert "not delivered after 2 attempt(s): timed out" in warned.message
    host = url(server, "").removesuffix("/")
    assert warned.data["target"] == f"{host}/…"
    shown = json.dumps([e.model_dump(mode="json") for e in events])
    assert SECRET not in shown and "tokenpart" not in shown
    store.close()


async def test_an_unreachable_url_is_a_warn_event_and_notify_never_raises(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    row = store.create_ops_run(actor="t", signature_ids=[SELECT_TOOL_ID])
    finished: OpsRunRow = store.update_ops_run(
        row.id, status="failed", summary={"ok": False, "errors": [{"step": "compile"}]}
    )
    with receiver() as server:
        closed = url(server)
    hook = Webhook(url=closed, secret=SECRET, timeout_s=1, attempts=2, backoff_s=0.01)
    recorded: list[tuple[str, str, dict[str, object]]] = []
    [delivery] = await notify_run_finished(
        finished,
        [hook],
        record=lambda level, message, data: recorded.append((level, message, data)),
    )
    assert not delivery.delivered and delivery.attempts == 2
    [(level, message, _)] = recorded
    assert level == "warn" and "ConnectError" in message and SECRET not in message
    store.close()


def test_env_configures_webhooks_beside_the_apps() -> None:
    env = {
        "DSE_WEBHOOK_URL": "https://a.example/hook, https://b.example/hook",
        "DSE_WEBHOOK_FORMAT": "slack",
        "DSE_WEBHOOK_SECRET": SECRET,
    }
    found = webhooks_from_env(env)
    assert [(w.url, w.format) for w in found] == [
        ("https://a.example/hook", "slack"),
        ("https://b.example/hook", "slack"),
    ]
    assert found[0].secret is not None and found[0].secret.get_secret_value() == SECRET
    assert SECRET not in repr(found)
    app = App("mine")
    app.add_webhook("https://a.example/hook", format="generic")
    app.add_webhook("https://c.example/hook")
    both = configured_webhooks(app, env)
    assert [w.url for w in both] == [
        "https://a.example/hook",
        "https://c.example/hook",
        "https://b.example/hook",
    ]
    assert webhooks_from_env({}) == []


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DSE_WEBHOOK_URL": "https://a.example", "DSE_WEBHOOK_FORMAT": "teams"}, "teams"),
        ({"DSE_WEBHOOK_URL": "ftp://a.example/x"}, "not an http(s) URL"),
    ],
)
def test_a_bad_webhook_env_is_one_clear_error(env: dict[str, str], says: str) -> None:
    with pytest.raises(DseError, match=r"DSE_WEBHOOK_(URL|FORMAT)") as raised:
        webhooks_from_env(env)
    assert says in str(raised.value)


async def test_a_remote_run_notifies_too_and_links_the_servers_run_page(tmp_path: Path) -> None:
    """The remote runner finishes its run on the server and tells the webhook from here; the
    delivery is recorded in the server's timeline like the run's other events."""
    from tests.server._live import ADMIN, live_server

    with receiver() as hook_server, live_server(tmp_path, _flat) as server:
        hook = Webhook(url=url(hook_server), secret=SECRET)
        summary = await run_remote_overnight(
            server.base_url, config(), token=ADMIN, poll_s=0.05, webhooks=[hook]
        )
        again = await run_remote_overnight(
            server.base_url,
            config(),
            token=ADMIN,
            resume=summary["run_id"],
            poll_s=0.05,
            webhooks=[hook],
        )
        # The resumed runner reads the server's timeline, sees the delivery, and posts nothing.
        [post] = hook_server.received
        body = json.loads(post.body)
        with server.client() as client:
            run = client.get(f"/api/dse/ops/runs/{summary['run_id']}").json()
    assert body["outcome"] == "refused_at_gate" and body["status"] == "finished"
    assert again["run_id"] == summary["run_id"] and again["outcome"] == summary["outcome"]
    assert body["url"] == f"{server.base_url}/dse/runs/{summary['run_id']}"
    notified = [e for e in run["events"] if e["phase"] == "notify"]
    assert [e["level"] for e in notified] == ["info"]
