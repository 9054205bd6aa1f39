from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dse.errors import StoreError
from dse.store import ENV_VAR, Store
from dse.store._engine import resolve_url


def test_default_is_sqlite_under_dot_dse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)

    with Store.open() as store:
        assert store.url_for_display == f"sqlite:///{tmp_path / '.dse' / 'dse.db'}"
    assert (tmp_path / ".dse" / "dse.db").is_file()


def test_env_var_chooses_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "from-env.db"
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{target}")

    with Store.open() as store:
        assert store.url_for_display.endswith("from-env.db")
    assert target.is_file()


def test_explicit_url_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "mysql://nope")

    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert store.url_for_display.endswith("x.db")


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'p.db'}") as store, store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_postgresql_urls_use_psycopg3() -> None:
    for raw in ("postgresql://u:p@h/db", "postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"):
        assert resolve_url(raw).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "url",
    [
        "definitely not a url",
        "mysql://root:hunter2@localhost/dse",
        "postgresql+psycopg2://root:hunter2@localhost/dse",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_bad_urls_raise_store_error_without_the_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    assert "hunter2" not in str(caught.value)


def test_sqlite_path_in_a_missing_folder_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "nested"
    with pytest.raises(StoreError, match="does not exist") as caught:
        Store.open(f"sqlite:///{missing / 'dse.db'}")
    assert str(missing) in str(caught.value)
    assert caught.value.details["folder"] == str(missing)
    assert not (tmp_path / "typo").exists()


def test_env_var_path_in_a_missing_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{tmp_path / 'gone' / 'dse.db'}")
    with pytest.raises(StoreError, match="does not exist"):
        Store.open()
    assert not (tmp_path / "gone").exists()


def test_sqlite_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(StoreError, match="is not a directory"):
        Store.open(f"sqlite:///{tmp_path / 'plain' / 'dse.db'}")


def test_sqlite_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(f"sqlite:///{tmp_path}")


def test_unreachable_postgresql_fails_fast_without_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        Store.open("postgresql://bob:hunter2@127.0.0.1:1/dse?connect_timeout=2")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "hunter2" not in message
    assert "bob:***@127.0.0.1:1/dse" in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_url_for_display_masks_the_password(store_url: str) -> None:
    # The throwaway server trusts local connections, so any password is accepted.
    url = store_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@", 1)

    with Store.open(url) as store:
        assert "hunter2" not in store.url_for_display
        assert "hunter2" not in repr(store)
        if url.startswith("postgresql"):
            assert "postgres:***@" in store.url_for_display


def test_a_database_newer_than_the_code_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(resolve_url(store_url))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE dse_alembic_version SET version_num = 'zzzz'"))
    finally:
        engine.dispose()

    with pytest.raises(StoreError, match="zzzz"):
        Store.open(store_url)


def _open_without_privileges(url: str) -> str:
    """``Store.open(url)`` in a forked child that file permissions apply to (root drops to
    ``nobody``, since root writes anywhere); the error's text, or "opened"."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                Store.open(url).close()
                text = "opened"
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop privileges")
def test_a_read_only_store_names_the_file_or_folder_that_is_not_writable() -> None:
    place = Path(tempfile.mkdtemp(prefix="dse-ro-", dir="/tmp"))
    try:
        place.chmod(0o755)
        owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        database = place / "dse.db"
        Store.open(f"sqlite:///{database}").close()
        database.chmod(0o444)
        if owner is not None:
            os.chown(place, owner.pw_uid, owner.pw_gid)
        message = _open_without_privileges(f"sqlite:///{database}")
        assert message.startswith("StoreError"), message
        assert f"SQLite database {str(database)!r} is not writable" in message

        database.chmod(0o644)
        if owner is not None:
            os.chown(database, owner.pw_uid, owner.pw_gid)
            os.chown(place, 0, 0)
        place.chmod(0o555)
        message = _open_without_privileges(f"sqlite:///{database}")
        assert f"folder {str(place)!r} of the SQLite database 'dse.db' is not writable" in message
    finally:
        place.chmod(0o755)
        shutil.rmtree(place)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h:notaport/db", "postgresql://u:secret-pw@h:12ab/db"]
)
def test_a_malformed_port_is_a_store_error_naming_the_port_without_the_password(url: str) -> None:
    with pytest.raises(StoreError, match=r"the port '(notaport|12ab)' is not a number") as caught:
        resolve_url(url)
    assert "secret-pw" not in str(caught.value)
