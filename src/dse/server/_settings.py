"""Server settings: store, model and the tokens (from env or a TOML file, never logged).

Tokens are refused when two roles share one (the server could not tell them apart, and the
viewer would become admin) or when one is shorter than :data:`MIN_TOKEN_CHARS` (16 characters:
the generated tokens have 32, and a short one can be guessed over the network)."""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dse.errors import DseError

ADMIN_ENV = "DSE_ADMIN_TOKEN"
VIEWER_ENV = "DSE_VIEWER_TOKEN"
PREDICT_ENV = "DSE_PREDICT_TOKEN"
CONFIG_ENV = "DSE_SERVER_CONFIG"
MIN_TOKEN_CHARS = 16


def token_problem(admin: str, viewer: str, predict: str | None = None) -> str | None:
    """Why these tokens cannot serve (None when they can); the message never shows a token."""
    named = {"admin": admin, "viewer": viewer, **({"predict": predict} if predict else {})}
    short = [role for role, value in named.items() if len(value) < MIN_TOKEN_CHARS]
    if short:
        return (
            f"the {', '.join(short)} token(s) must be at least {MIN_TOKEN_CHARS} characters "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    roles = list(named)
    for i, first in enumerate(roles):
        for second in roles[i + 1 :]:
            if named[first] == named[second]:
                return f"the {first} and {second} tokens must differ"
    return None


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    db: str | None = None
    lm: str = "local:qwen2.5-coder-0.5b"
    admin_token: SecretStr
    viewer_token: SecretStr
    predict_token: SecretStr | None = Field(
        default=None, description="The agents' token (predict and feedback only); None: no role."
    )
    tokens_file: str | None = Field(default=None, description="Where the tokens came from.")
    teacher: str | None = Field(
        default=None,
        description="The LM that writes instruction proposals for compiles queued here, in the "
        "forms of `lm` (None: the task model writes them).",
    )
    worker: bool = Field(
        default=True,
        description="Run durable jobs (compile, eval, exercise) in this process as well; off "
        "when separate `dse worker` processes do all of it.",
    )
    worker_lease_s: float = Field(
        default=30.0, gt=0, description="How long a job stays ours without a renewal."
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="The largest request body any route reads (413 beyond it): 2 MiB holds "
        "every JSON request but the import many times over.",
    )
    max_import_body_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="The largest body of the JSONL import (examples:import): room for its "
        "64 Mi-character jsonl text with the escaping JSON adds.",
    )

    @model_validator(mode="after")
    def _tokens_are_distinct_and_long(self) -> ServerSettings:
        """However the settings were built, no two roles share a token and none is short."""
        problem = token_problem(
            self.admin_token.get_secret_value(),
            self.viewer_token.get_secret_value(),
            self.predict_token.get_secret_value() if self.predict_token else None,
        )
        if problem:
            raise ValueError(problem)
        return self


def load_tokens(config_path: str | None = None) -> tuple[SecretStr, SecretStr, str]:
    """Tokens from DSE_ADMIN_TOKEN / DSE_VIEWER_TOKEN, else a TOML file (``admin_token``,
    ``viewer_token``); with neither, fresh tokens are written to ``./.dse/server-tokens.toml``
    (mode 0600) so the operator can read them without them ever reaching a log."""
    admin, viewer = os.environ.get(ADMIN_ENV), os.environ.get(VIEWER_ENV)
    if admin and viewer:
        problem = token_problem(admin, viewer)
        if problem:
            raise DseError(f"{ADMIN_ENV} / {VIEWER_ENV}: {problem}")
        return SecretStr(admin), SecretStr(viewer), "environment"
    path = Path(config_path or os.environ.get(CONFIG_ENV) or ".dse/server-tokens.toml")
    if not path.exists():
        if config_path or os.environ.get(CONFIG_ENV):
            raise DseError(f"server config {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = (
            f'admin_token = "{secrets.token_urlsafe(24)}"\n'
            f'viewer_token = "{secrets.token_urlsafe(24)}"\n'
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(body)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DseError(f"cannot read server config {path}: {exc}") from None
    missing = [k for k in ("admin_token", "viewer_token") if not isinstance(data.get(k), str)]
    if missing:
        raise DseError(f"server config {path} lacks {', '.join(missing)}")
    problem = token_problem(data["admin_token"], data["viewer_token"])
    if problem:
        raise DseError(f"server config {path}: {problem}")
    return SecretStr(data["admin_token"]), SecretStr(data["viewer_token"]), str(path)


def load_predict_token(
    tokens_source: str, *, admin: SecretStr, viewer: SecretStr
) -> SecretStr | None:
    """The optional predict token: ``DSE_PREDICT_TOKEN``, else ``predict_token`` in the tokens
    file :func:`load_tokens` read (its ``tokens_source``); None when neither sets one, and then
    the server has no predict role. It must differ from the admin and viewer tokens, or a
    request could not be told apart."""
    value = os.environ.get(PREDICT_ENV, "").strip() or None
    where = PREDICT_ENV
    if value is None and tokens_source != "environment" and Path(tokens_source).is_file():
        path = Path(tokens_source)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DseError(f"cannot read server config {path}: {exc}") from None
        found = data.get("predict_token")
        if found is not None and (not isinstance(found, str) or not found.strip()):
            raise DseError(f"server config {path}: predict_token must be a non-empty string")
        value, where = found, str(path)
    if value is None:
        return None
    problem = token_problem(admin.get_secret_value(), viewer.get_secret_value(), value)
    if problem:
        raise DseError(f"{where}: {problem}")
    return SecretStr(value)
