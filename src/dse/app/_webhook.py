"""Where an app wants to hear that an ops run finished (delivered by :mod:`dse.ops._webhook`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

WebhookFormat = Literal["slack", "generic"]


class Webhook(BaseModel):
    """A URL that gets a JSON POST when an ops run finishes; the secret signs the body and is
    kept out of reprs and dumps (``SecretStr``) so it cannot reach a log or an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://\S+$")
    format: WebhookFormat = "generic"
    secret: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Per attempt, all told.")
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_s: float = Field(default=1.0, ge=0, le=60, description="Doubles after each attempt.")
