"""Find the app to load: ``--app``, then ``DSE_APP``, then ``[tool.dse] app`` in the working
directory's ``pyproject.toml``, else Autopilot. Resolved once, at the top of each command."""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from dse.app._app import App
from dse.errors import RegistryError

DEFAULT_APP = "dse.autopilot:app"
APP_ENV = "DSE_APP"


@dataclass(frozen=True)
class LoadedApp:
    """An app with the spec it was loaded from (recorded in ops runs so a resume reloads it)."""

    app: App
    spec: str
    origin: str


def app_spec(given: str | None = None, *, cwd: Path | None = None) -> tuple[str, str]:
    """The app spec to use and where it came from (``--app``, env, pyproject, default)."""
    if given:
        return given, "--app"
    env = os.environ.get(APP_ENV, "").strip()
    if env:
        return env, APP_ENV
    pyproject = (cwd or Path.cwd()) / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"{pyproject}: cannot read [tool.dse]: {exc}") from None
        value = data.get("tool", {}).get("dse", {}).get("app")
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise RegistryError(f"{pyproject}: [tool.dse] app must be a 'module:attr' string")
            return value.strip(), str(pyproject)
    return DEFAULT_APP, "default"


def load_app(given: str | App | None = None, *, cwd: Path | None = None) -> LoadedApp:
    """Import ``module:attr`` (the working directory is importable, as with uvicorn) and check
    that it names a :class:`dse.App`; every failure names the part that was missing."""
    if isinstance(given, App):
        return LoadedApp(given, f"<object {given.name}>", "object")
    spec, origin = app_spec(given, cwd=cwd)
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise RegistryError(f"app {spec!r} (from {origin}) must look like 'module:attr'")
    folder = str((cwd or Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RegistryError(
                f"app {spec!r} (from {origin}): module {module_name!r} not found "
                f"(looked in {folder} and the installed packages)"
            ) from None
        raise
    found: object = module
    for part in attr_path.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise RegistryError(
                f"app {spec!r} (from {origin}): {module_name} has no attribute {attr_path!r}"
            ) from None
    if not isinstance(found, App):
        raise RegistryError(
            f"app {spec!r} (from {origin}) is a {type(found).__name__}, not a dse.App"
        )
    return LoadedApp(found, spec, origin)
