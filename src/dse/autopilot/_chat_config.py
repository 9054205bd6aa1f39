"""The Autopilot chat's settings, chosen by the app that serves it. Kept apart from the chat's
routes so an app can be configured (and loaded by the CLI) without importing the web stack."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RECAP_AFTER_CHARS = 6_000
#: The most a threshold may be: a stored thread version carries up to one threshold of text
#: not yet recapped, and the chat is open to the viewer token.
MAX_RECAP_AFTER_CHARS = 100_000
DEFAULT_RECAP_QUESTION = "What has this thread decided or changed so far, and what is still open?"
#: Sets ``recap_after_chars`` for the default app (``dse.autopilot:app``) without writing one.
RECAP_AFTER_CHARS_ENV = "DSE_AUTOPILOT_RECAP_AFTER_CHARS"


class ChatConfig(BaseModel):
    """How the Autopilot chat behaves: ``build_app(chat=ChatConfig(...))``.

    ``recap_after_chars``: once the thread's messages (the user's and the agent's text, over the
    thread's whole life) have grown by this many characters since the last recap, the reply
    carries a new recap of the thread through ``autopilot/rlm/SummarizeThread.v1``; so a recap
    comes once per crossing, never on every message. ``recap_question`` is what it answers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    recap_after_chars: int = Field(
        default=DEFAULT_RECAP_AFTER_CHARS, ge=1, le=MAX_RECAP_AFTER_CHARS
    )
    recap_question: str = Field(default=DEFAULT_RECAP_QUESTION, min_length=1, max_length=500)

    @classmethod
    def from_env(cls) -> ChatConfig:
        """The defaults, with ``recap_after_chars`` from the environment when it is set."""
        value = os.environ.get(RECAP_AFTER_CHARS_ENV, "").strip()
        return cls(recap_after_chars=int(value)) if value else cls()
