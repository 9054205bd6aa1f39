"""Fixtures for the LM layer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lm.lm_fake_server import FakeOpenAI


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(timeout=5)
