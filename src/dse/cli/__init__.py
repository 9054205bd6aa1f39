"""Command line entry point."""

from dse.cli import (
    _loop,  # noqa: F401  (registers the loop commands on the app)
    _serve,  # noqa: F401  (registers serve and mine)
)
from dse.cli._app import app, main

__all__ = ["app", "main"]
