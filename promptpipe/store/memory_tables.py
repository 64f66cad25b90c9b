"""Tables of the in-memory store and the journal that undoes a failed write.

``Tables`` contains one dict or list per table, plus indexes and counters. ``Journal``
records the previous value of every entry a transaction changes, so ``rollback`` can
put each one back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptpipe.models import (
    FlowState,
    Hook,
    InboundRecord,
    Job,
    OutboxMessage,
    Participant,
    Poll,
    Receipt,
    Response,
)

_MISSING = object()


class Journal:
    """Undo log of one write transaction."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def put(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        old = mapping.get(key, _MISSING)
        self._undo.append(lambda: _restore(mapping, key, old))
        mapping[key] = value

    def pop(self, mapping: dict[Any, Any], key: Any) -> None:
        if key in mapping:
            old = mapping[key]
            self._undo.append(lambda: _restore(mapping, key, old))
            del mapping[key]

    def append(self, items: list[Any], value: Any) -> None:
        length = len(items)
        self._undo.append(lambda: items.__delitem__(slice(length, None)))
        items.append(value)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def _restore(mapping: dict[Any, Any], key: Any, old: Any) -> None:
    if old is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = old


@dataclass
class Tables:
    participants: dict[str, Participant] = field(default_factory=dict)
    flow_states: dict[tuple[str, str], FlowState] = field(default_factory=dict)
    hooks: dict[str, Hook] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    outbox: dict[str, OutboxMessage] = field(default_factory=dict)
    inbound: dict[str, InboundRecord] = field(default_factory=dict)
    polls: dict[str, Poll] = field(default_factory=dict)
    # Indexes: every job or message id ever written under a dedupe key, and the
    # participant id of each phone.
    job_ids_by_key: dict[str, list[str]] = field(default_factory=dict)
    outbox_ids_by_key: dict[str, list[str]] = field(default_factory=dict)
    participant_by_phone: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
