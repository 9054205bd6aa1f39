"""A small agent program using the public client, run as its own process by the client tests.

    python _agent.py sync|async CONNECT_JSON [--graceful]

It connects with ``dse.connect(**CONNECT_JSON)`` and reads commands from stdin, one per line,
printing one JSON line per event (flushed, so the test sees exactly what was reported):

* ``predict THREAD``: one prediction -> ``{"event": "answered", "receipt_id", "compiled_id", ...}``
* ``stream N THREAD``: N predictions in a row, one ``answered`` line each
* ``feedback RECEIPT_ID REWARD SOURCE`` -> ``{"event": "feedback", ...FeedbackResult}``
* ``exit``: return from main **without** closing the client (the exit hook must flush)
* ``close``: close the client, then return

``--graceful`` (async only) installs an asyncio SIGTERM handler before connecting that stops
the stream and returns from main, as a service shutting down cleanly would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import dse

SIGNATURE = "autopilot/blueprint/SelectTool.v1"
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def answered(p: dse.ClientPrediction) -> None:
    emit(
        "answered",
        receipt_id=p.receipt_id,
        compiled_id=p.compiled_id,
        source=p.source,
        arm=p.arm,
        output=p.output,
    )


def run_sync(options: dict[str, Any]) -> None:
    client = dse.connect(**options)
    emit("ready", mode=client.mode)
    for line in sys.stdin:
        command, *args = line.split()
        try:
            if command == "predict":
                answered(client.predict(SIGNATURE, INPUT, thread=args[0]))
            elif command == "stream":
                for _ in range(int(args[0])):
                    answered(client.predict(SIGNATURE, INPUT, thread=args[1]))
            elif command == "feedback":
                result = client.feedback(args[0], reward=float(args[1]), source=args[2])
                emit("feedback", **result.model_dump(mode="json"))
            elif command == "close":
                client.close()
                return
            elif command == "exit":
                return
        except dse.DseError as exc:
            emit("error", name=exc.name, message=str(exc), status=exc.details.get("status"))


async def run_async(options: dict[str, Any], graceful: bool) -> None:
    stop = asyncio.Event()
    if graceful:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = dse.connect(**options)
    emit("ready", mode=client.mode)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        command, *args = line.split()
        try:
            if command == "predict":
                answered(await client.apredict(SIGNATURE, INPUT, thread=args[0]))
            elif command == "stream":
                for _ in range(int(args[0])):
                    if stop.is_set():
                        emit("stopped")
                        return
                    answered(await client.apredict(SIGNATURE, INPUT, thread=args[1]))
            elif command == "feedback":
                result = await client.afeedback(args[0], reward=float(args[1]), source=args[2])
                emit("feedback", **result.model_dump(mode="json"))
            elif command == "close":
                await client.aclose()
                return
            elif command == "exit":
                return
        except dse.DseError as exc:
            emit("error", name=exc.name, message=str(exc), status=exc.details.get("status"))


def main() -> None:
    mode, options = sys.argv[1], json.loads(sys.argv[2])
    if mode == "sync":
        run_sync(options)
    else:
        asyncio.run(run_async(options, graceful="--graceful" in sys.argv))


if __name__ == "__main__":
    main()
