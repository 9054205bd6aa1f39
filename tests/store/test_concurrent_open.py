"""First opens of a fresh SQLite file race each other and must all succeed (issue 9, defect 3).

Switching a file to WAL needs an exclusive lock, and SQLite answers that request with BUSY at once,
without calling the busy handler, while another connection holds the write lock. These tests keep
the reproductions: an opener racing one held ``BEGIN IMMEDIATE``, and eight processes opening the
same fresh file at the same instant, fifty times over.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

from dse.store import Store

PROCESSES = 8
ROUNDS = 50
# Each round starts at its own agreed instant, so all processes hit the fresh file together.
ROUND_SPACING_S = 0.25


def test_open_waits_for_a_write_lock_held_on_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    try:
        started = time.monotonic()
        with Store.open(f"sqlite:///{path}") as store:
            assert store.get_active("nothing") is None
        assert time.monotonic() - started >= 0.4
    finally:
        release.join()
        holder.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_open_waits_for_a_write_lock_held_on_a_migrated_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    Store.open(url).close()
    holder = sqlite3.connect(
        tmp_path / "migrated.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    try:
        with Store.open(url) as store:
            assert store.get_active("nothing") is None
    finally:
        release.join()
        holder.close()


def _open_every_round(folder: str, start_at: float, failures: multiprocessing.Queue[str]) -> None:
    for n in range(ROUNDS):
        delay = start_at + n * ROUND_SPACING_S - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            with Store.open(f"sqlite:///{folder}/round-{n:03d}.db") as store:
                store.get_active("nothing")
        except Exception as exc:  # every failure is reported, whatever its type
            failures.put(f"round {n}: {type(exc).__name__}: {exc}")


def test_eight_processes_open_fifty_fresh_files_together_without_failure(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    failures: multiprocessing.Queue[str] = context.Queue()
    # Spawned interpreters take a second or two to import dse; every one waits for this instant.
    start_at = time.time() + 8.0
    workers = [
        context.Process(target=_open_every_round, args=(str(tmp_path), start_at, failures))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    found: list[str] = []
    while not failures.empty():
        found.append(failures.get())
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert found == []
    assert len(list(tmp_path.glob("round-*.db"))) == ROUNDS
