from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.store import Store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """Optimizer tests are about search, not storage: one backend is enough here."""
    store = Store.open(f"sqlite:///{tmp_path / 'compile.db'}")
    yield store
    store.close()
