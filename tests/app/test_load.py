"""Loading the user's app: --app, DSE_APP, [tool.dse] in pyproject.toml, else Autopilot; every
failure names the part that is missing. And what App.add fills in when the user leaves it out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dse
from dse.app import DEFAULT_APP, app_spec, load_app
from dse.compile import DEFAULT_BUDGET, default_space
from dse.errors import RegistryError
from tests.app import _tiny

TINY = "tests.app._tiny:app"


def test_the_order_is_flag_then_env_then_pyproject_then_autopilot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSE_APP", raising=False)
    assert app_spec(None, cwd=tmp_path) == (DEFAULT_APP, "default")
    (tmp_path / "pyproject.toml").write_text('[tool.dse]\napp = "from.pyproject:app"\n')
    assert app_spec(None, cwd=tmp_path) == ("from.pyproject:app", str(tmp_path / "pyproject.toml"))
    monkeypatch.setenv("DSE_APP", "from.env:app")
    assert app_spec(None, cwd=tmp_path) == ("from.env:app", "DSE_APP")
    assert app_spec("from.flag:app", cwd=tmp_path) == ("from.flag:app", "--app")


def test_loads_the_users_app_and_the_default_is_autopilot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSE_APP", raising=False)
    loaded = load_app(TINY)
    assert loaded.app is _tiny.app and loaded.spec == TINY
    assert [s.id for s in loaded.app.signatures.all()] == ["tiny/Mood.v1"]
    default = load_app(None, cwd=Path(__file__).parent)
    assert default.spec == DEFAULT_APP
    assert "autopilot/blueprint/SelectTool.v1" in [s.id for s in default.app.signatures.all()]


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("tests.app._tiny", "must look like 'module:attr'"),
        ("tests.app._nowhere:app", "module 'tests.app._nowhere' not found"),
        ("tests.app._tiny:nope", "has no attribute 'nope'"),
        ("tests.app._tiny:not_an_app", "is a str, not a dse.App"),
    ],
)
def test_a_bad_spec_names_what_is_missing(spec: str, names: str) -> None:
    with pytest.raises(RegistryError, match=re.escape(names)):
        load_app(spec)


def test_a_broken_pyproject_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSE_APP", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.dse\n")
    with pytest.raises(RegistryError, match=r"pyproject\.toml: cannot read"):
        app_spec(None, cwd=tmp_path)


def test_add_fills_in_a_generic_space_reward_and_budget() -> None:
    registration = _tiny.app.registration(_tiny.MOOD.id)
    assert registration.profile.space == default_space(_tiny.MOOD)
    assert registration.profile.budget == DEFAULT_BUDGET
    assert registration.profile.optimizer == "race"
    assert registration.profile.reward(None, None).id == "exact_match"  # type: ignore[arg-type]
    # A relative dataset path is read next to the module that called add().
    assert registration.dataset == Path(_tiny.__file__).parent / "rows.jsonl"


def test_add_refuses_unknown_optimizers_and_a_second_signature_with_the_same_id() -> None:
    app = dse.App("t")
    with pytest.raises(RegistryError, match="unknown optimizer 'nope'"):
        app.add(_tiny.MOOD, optimizer="nope")
    app.add(_tiny.MOOD)
    twin = dse.Signature(
        id=_tiny.MOOD.id,
        input_model=_tiny.Text,
        output_model=_tiny.Mood,
        prompt=dse.PromptBlocks(instruction="other"),
    )
    with pytest.raises(RegistryError, match="already registered"):
        app.add(twin)
