"""What every handler shares: the store, the app, the LM and the live Predict path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from dse.app import App
from dse.lm import LM
from dse.runtime import Predictor, ReceiptWriter
from dse.server._settings import ServerSettings
from dse.store import Store


@dataclass
class ServerContext:
    settings: ServerSettings
    store: Store
    app: App
    app_spec: str
    lm: LM
    writer: ReceiptWriter
    predictor: Predictor
    # Writes instruction proposals for the compiles this server queues and runs (None: the task
    # model does).
    teacher: LM | None = None
    background: dict[str, Any] = field(default_factory=dict)


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.dse
    return context
