"""Routes over stored receipts and responses: ``/receipts``, ``/response``,
``/responses`` and ``/stats``.

``POST /response`` stores a row as given: it bypasses hooks, enrollment and the
conversation engine, and it neither requires nor canonicalizes ``from``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from quart import Response

from promptpipe.api.decoding import read_int64, read_json_object, read_text
from promptpipe.api.encoding import receipt_json, response_json, stats_json
from promptpipe.api.envelope import ok
from promptpipe.api.errors import server_fault
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.errors import PromptPipeError

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)


def _log_store_failure(event: str) -> None:
    logger.error("%s", event.replace("_", " "), exc_info=True, extra={"event": event})


async def list_receipts(app: Application) -> Response:
    """Handle ``GET /receipts``: every receipt in insertion order."""
    try:
        receipts = await app.list_receipts()
    except PromptPipeError as exc:
        _log_store_failure("receipts_fetch_failed")
        raise server_fault("Failed to fetch receipts", exc.code) from exc
    return ok(result=[receipt_json(receipt) for receipt in receipts])


async def record_response(app: Application) -> Response:
    """Handle ``POST /response``: store ``from`` and ``body`` with the current time.

    A ``time`` in the body must be an integer and is then replaced.
    """
    obj = await read_json_object()
    sender = read_text(obj, "from") or ""
    body = read_text(obj, "body") or ""
    read_int64(obj, "time")

    try:
        await app.record_response(sender, body)
    except PromptPipeError as exc:
        _log_store_failure("response_store_failed")
        raise server_fault("Failed to store response", exc.code) from exc
    return ok("Response recorded successfully", status=201)


async def list_responses(app: Application) -> Response:
    """Handle ``GET /responses``: every stored response in insertion order."""
    try:
        responses = await app.list_responses()
    except PromptPipeError as exc:
        _log_store_failure("responses_fetch_failed")
        raise server_fault("Failed to fetch responses", exc.code) from exc
    return ok(result=[response_json(response) for response in responses])


async def stats(app: Application) -> Response:
    """Handle ``GET /stats``: counts per sender and the average length in bytes."""
    try:
        result = await app.stats()
    except PromptPipeError as exc:
        _log_store_failure("responses_fetch_failed")
        raise server_fault("Failed to fetch responses", exc.code) from exc
    return ok(result=stats_json(result))


def register(router: Router, app: Application) -> None:
    """Add the receipt, response and statistics routes."""
    empty_405 = NotAllowedBody.EMPTY
    router.add(
        ["/receipts"], "receipts", {"GET": partial(list_receipts, app)}, empty_405
    )
    router.add(
        ["/response"], "response", {"POST": partial(record_response, app)}, empty_405
    )
    router.add(
        ["/responses"], "responses", {"GET": partial(list_responses, app)}, empty_405
    )
    router.add(["/stats"], "stats", {"GET": partial(stats, app)}, empty_405)
