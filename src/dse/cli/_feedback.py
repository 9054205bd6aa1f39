"""``dse feedback``: record a reward for a prediction from the shell (an operator's review, a
label that arrived later), through the same procedure as the client and the HTTP API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from dse.cli._app import Options, _emit, _errors, _fail, _open_store, _opts, app, out
from dse.service import record_feedback_flushing


@app.command()
def feedback(
    ctx: typer.Context,
    receipt_id: Annotated[str, typer.Argument(metavar="RECEIPT_ID")],
    reward: Annotated[
        float, typer.Option("--reward", help="A number in [0, 1] (1 = right, 0 = wrong).")
    ],
    source: Annotated[
        str,
        typer.Option("--source", help="Who judged (a canary may decide on one source)."),
    ] = "feedback",
    correct: Annotated[
        str | None,
        typer.Option(
            "--correct",
            metavar="JSON",
            help="The right output as a JSON object, checked against the signature.",
        ),
    ] = None,
) -> None:
    """Record feedback for RECEIPT_ID; re-sending the same feedback is a no-op."""
    opts = _opts(ctx)
    correct_output = _correct_output(opts, correct)
    with _errors(opts):
        signatures = opts.app.signatures
        store = _open_store(opts)
        try:
            result = record_feedback_flushing(
                store,
                receipt_id,
                reward=reward,
                source=source,
                correct_output=correct_output,
                signatures=signatures,
            )
        finally:
            store.close()

    def human() -> None:
        what = "recorded" if result.created else "already recorded (unchanged)"
        counted = (
            f"counts in the canary's {result.counted_in_arm} arm"
            if result.counted_in_arm
            else "no running canary decides on this source"
        )
        out.print(f"feedback {what}: {result.source} = {result.reward} for {result.receipt_id}")
        out.print(counted)

    _emit(opts, {"ok": True, **result.model_dump(mode="json")}, human)


def _correct_output(opts: Options, given: str | None) -> dict[str, Any] | None:
    if given is None:
        return None
    try:
        value = json.loads(given)
    except json.JSONDecodeError as exc:
        _fail(opts, f"--correct is not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        _fail(opts, f"--correct must be a JSON object, got {type(value).__name__}")
    return value
