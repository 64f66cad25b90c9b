"""Pytest fixtures over the fakes, for conftest modules to import."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.llm_server import FakeLLMServer, open_fake_llm_server


@pytest.fixture
async def fake_llm_server() -> AsyncIterator[FakeLLMServer]:
    """Run a fake chat-completions server on 127.0.0.1 for one test."""
    async with open_fake_llm_server() as server:
        yield server
