"""The HTTP service: API, read-only pages, and the routes an app adds (e.g. Autopilot's chat).

``PageContext``, ``PageRoute``, ``render`` and ``error_response`` are what an app's own pages use
to share the server's context, its token-cookie pages, its templates and its error shape.
"""

from dse.server._app import create_app
from dse.server._auth import required_access
from dse.server._context import ServerContext
from dse.server._errors import error_response
from dse.server._pages import Ctx as PageContext
from dse.server._pages import TokenCookieRoute as PageRoute
from dse.server._pages import render
from dse.server._settings import ServerSettings, load_predict_token, load_tokens

__all__ = [
    "PageContext",
    "PageRoute",
    "ServerContext",
    "ServerSettings",
    "create_app",
    "error_response",
    "load_predict_token",
    "load_tokens",
    "render",
    "required_access",
]
