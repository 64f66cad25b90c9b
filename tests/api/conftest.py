"""Fixtures of the admin API tests; the harness lives in ``tests/api/harness.py``."""

from __future__ import annotations

from tests.api.harness import api, api_llm, api_llm_store, api_store, memory_store

__all__ = ["api", "api_llm", "api_llm_store", "api_store", "memory_store"]
