"""The browser check of ``dse overnight --e2e`` and the in-process server it (and the browser
tests) use. It sits above the server and the ops runner, which receive it as a plain callable."""

from dse.e2e._browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    api_probe,
    browser_check,
    embedded_check,
    remote_check,
    require_chromium,
)
from dse.e2e._server import BorrowedLM, ServerThread, store_url

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "BorrowedLM",
    "ServerThread",
    "api_probe",
    "browser_check",
    "embedded_check",
    "remote_check",
    "require_chromium",
    "store_url",
]
