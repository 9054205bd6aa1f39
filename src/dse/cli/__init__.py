"""Command line entry point."""

from dse.cli import (  # noqa: F401  (each module registers its commands on the app)
    _canary,
    _compile,
    _data,
    _feedback,
    _interop,
    _loop,
    _models,
    _registry,
    _report,
    _serve,
    _worker,
)
from dse.cli._app import app, main

__all__ = ["app", "main"]
