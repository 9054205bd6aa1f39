"""The HTTP service: API, read-only pages and the Autopilot chat."""

from dse.server._app import create_app
from dse.server._auth import required_access
from dse.server._settings import ServerSettings, load_tokens

__all__ = ["ServerSettings", "create_app", "load_tokens", "required_access"]
