"""Apps: a team's signatures, registered in its own code and loaded by ``module:attr``."""

from dse.app._app import (
    App,
    BrowserProbe,
    ProbeResult,
    Registration,
    RouterFactory,
    WebLink,
)
from dse.app._load import APP_ENV, DEFAULT_APP, LoadedApp, app_spec, load_app
from dse.app._webhook import Webhook, WebhookFormat

__all__ = [
    "APP_ENV",
    "DEFAULT_APP",
    "App",
    "BrowserProbe",
    "LoadedApp",
    "ProbeResult",
    "Registration",
    "RouterFactory",
    "WebLink",
    "Webhook",
    "WebhookFormat",
    "app_spec",
    "load_app",
]
