"""Autopilot as a dse app: loaded like any user's app (``dse.autopilot:app``), the default when no
app is named. Its chat page joins the server through the same door any app's routes use."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from dse.app import App, WebLink
from dse.autopilot._chat_config import ChatConfig
from dse.autopilot._chat_probe import chat_probe
from dse.autopilot._recap import RECAP, RECAP_PROFILE, recap_dataset_path
from dse.autopilot._select_tool import SELECT_TOOL, dataset_path
from dse.autopilot._select_tool_space import SELECT_TOOL_PROFILE
from dse.autopilot._summarize import (
    RECAP_THREAD,
    SUMMARIZE_THREAD,
    THREAD_PROFILE,
    summarize_thread_dataset_path,
)

if TYPE_CHECKING:
    from fastapi import APIRouter


def _chat_router(config: ChatConfig) -> Callable[[], APIRouter]:
    def build() -> APIRouter:
        router: APIRouter = import_module("dse.autopilot._chat").chat_router(config)
        return router

    return build


def build_app(chat: ChatConfig | None = None) -> App:
    """The Autopilot app; ``chat`` sets how its chat behaves (default: :class:`ChatConfig`
    with ``DSE_AUTOPILOT_RECAP_AFTER_CHARS`` applied)."""
    config = chat if chat is not None else ChatConfig.from_env()
    app = App("autopilot")
    for signature, profile, dataset in (
        (SELECT_TOOL, SELECT_TOOL_PROFILE, dataset_path()),
        (RECAP, RECAP_PROFILE, recap_dataset_path()),
        (SUMMARIZE_THREAD, THREAD_PROFILE, summarize_thread_dataset_path()),
        (RECAP_THREAD, THREAD_PROFILE, summarize_thread_dataset_path()),
    ):
        app.add(
            signature,
            space=profile.space,
            reward=profile.reward,
            budget=profile.budget,
            optimizer=profile.optimizer,
            dataset=dataset,
        )
    app.template_dirs.append(Path(str(files("dse.autopilot") / "templates")))
    app.add_router(_chat_router(config), nav=WebLink("Autopilot", "/autopilot"))
    app.add_browser_probe(SELECT_TOOL.id, chat_probe)
    return app


app = build_app()
