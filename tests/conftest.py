"""Store fixtures: every store test runs on SQLite and on a throwaway PostgreSQL server.

The PostgreSQL server is started once per session by pytest-postgresql from the installed server
binaries; each test gets its own fresh database, created from the server's empty template and
dropped afterwards. PostgreSQL refuses to run as root, so when the tests run as root (as in CI
containers) pg_ctl goes through a small generated wrapper that hands the data directory and log
file to an unprivileged account (``postgres``, else ``nobody``), makes the directories above them
traversable (o+x, no read), and drops privileges.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from dse.store import Store

_DEBIAN_PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def _find_pg_ctl() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return found
    if os.access(_DEBIAN_PG_CTL, os.X_OK):
        return _DEBIAN_PG_CTL
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return candidates[-1] if candidates else None


_WRAPPER = '''#!{python}
"""pg_ctl as {user}: PostgreSQL will not run as root."""
import os, pwd, stat, sys
from pathlib import Path

account = pwd.getpwnam({user!r})
args = sys.argv[1:]


def hand_over(path, is_dir):
    path = Path(path)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    if is_dir:
        path.mkdir(mode=0o700, exist_ok=True)
    else:
        path.touch(exist_ok=True)
    os.chown(path, account.pw_uid, account.pw_gid)


for flag, is_dir in (("-D", True), ("--pgdata", True), ("-l", False)):
    if flag in args[:-1]:
        hand_over(args[args.index(flag) + 1], is_dir)
os.chdir("/")
os.setgroups([])
os.setgid(account.pw_gid)
os.setuid(account.pw_uid)
os.environ.update(HOME=account.pw_dir, USER={user!r}, LOGNAME={user!r})
os.execv({pg_ctl!r}, [{pg_ctl!r}, *args])
'''


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' account to run PostgreSQL")


def _pg_executable(pg_ctl: str | None) -> str | None:
    """pg_ctl itself, or (as root) a wrapper that runs it as an unprivileged account."""
    if pg_ctl is None or os.geteuid() != 0:
        return pg_ctl
    user = _unprivileged_user()
    directory = tempfile.mkdtemp(prefix="dse-pg-ctl-")
    atexit.register(shutil.rmtree, directory, True)
    wrapper = Path(directory) / "pg_ctl"
    wrapper.write_text(_WRAPPER.format(python=sys.executable, user=user, pg_ctl=pg_ctl))
    wrapper.chmod(0o700)
    return str(wrapper)


PG_CTL = _find_pg_ctl()

postgresql_server = factories.postgresql_proc(
    executable=_pg_executable(PG_CTL) or _DEBIAN_PG_CTL, port=None
)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL database per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dse.db'}"
        return
    if PG_CTL is None:
        pytest.fail(
            "PostgreSQL server binaries not found (no pg_ctl on PATH or under "
            "/usr/lib/postgresql/*/bin): install the server package (Debian: postgresql-15) "
            "or deselect these tests with -m 'not postgres'",
            pytrace=False,
        )
    server: PostgreSQLExecutor = request.getfixturevalue("postgresql_server")
    dbname = f"dse_{uuid.uuid4().hex[:16]}"
    janitor = DatabaseJanitor(
        user=server.user,
        host=server.host,
        port=server.port,
        dbname=dbname,
        template_dbname=server.template_dbname,
        password=server.password,
    )
    with janitor:
        yield f"postgresql://{server.user}@{server.host}:{server.port}/{dbname}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated Store on each backend; closed after the test."""
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
