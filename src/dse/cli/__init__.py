"""Command line entry point."""

from dse.cli._app import app, main

__all__ = ["app", "main"]
