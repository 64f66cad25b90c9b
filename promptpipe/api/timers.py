"""The ``/timers`` routes: list, read and cancel the recurring ``/schedule`` prompts.

These bodies carry no envelope; their errors do. ``/timers/`` is the collection as
well, and any other path below ``/timers/``, such as ``/timers/{id}/more`` or
``/timers//``, is the 404 ``Unknown timer endpoint``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import trio
from quart import Response

from actors import ActorError
from promptpipe.api.encoding import timer_json
from promptpipe.api.envelope import error_envelope, json_response
from promptpipe.api.errors import ApiError, not_found, server_fault
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.errors import PromptPipeError

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)


def _timer_not_found(timer_id: str) -> ApiError:
    return not_found(
        f"Timer not found: timer with ID {timer_id} not found", "timer_not_found"
    )


def _log_failure(event: str, timer_id: str | None = None) -> None:
    logger.error(
        "%s",
        event.replace("_", " "),
        exc_info=True,
        extra={"event": event, "timer_id": timer_id},
    )


async def list_timers(app: Application) -> Response:
    """Handle ``GET /timers``: ``{"timers": [...], "count": N}``."""
    try:
        timers = await app.list_timers()
    except PromptPipeError as exc:
        _log_failure("timers_list_failed")
        raise server_fault("Failed to list timers", exc.code) from exc
    now = app.clock.now()
    items = [timer_json(timer, now) for timer in timers]
    return json_response({"timers": items, "count": len(items)})


async def get_timer(app: Application, timer_id: str) -> Response:
    """Handle ``GET /timers/{id}``: one TimerInfo, or 404."""
    # NUL cannot occur in an id and PostgreSQL rejects it in a query parameter.
    if "\x00" in timer_id:
        raise _timer_not_found(timer_id)
    try:
        timer = await app.get_timer(timer_id)
    except PromptPipeError as exc:
        _log_failure("timer_fetch_failed", timer_id)
        raise server_fault("Failed to get timer", exc.code) from exc
    if timer is None:
        raise _timer_not_found(timer_id)
    return json_response(timer_json(timer, app.clock.now()))


async def cancel_timer(app: Application, timer_id: str) -> Response:
    """Handle ``DELETE /timers/{id}``: cancel the timer and its durable job."""
    if "\x00" in timer_id:
        raise _timer_not_found(timer_id)
    try:
        canceled = await app.cancel_timer(timer_id)
    except (PromptPipeError, ActorError, trio.TooSlowError) as exc:
        _log_failure("timer_cancel_failed", timer_id)
        raise server_fault("Failed to cancel timer", "timer_cancel_failed") from exc
    if not canceled:
        raise _timer_not_found(timer_id)
    logger.info(
        "timer canceled through the API",
        extra={"event": "timer_canceled", "timer_id": timer_id},
    )
    return json_response(
        {
            "message": "Timer cancelled successfully",
            "timerID": timer_id,
            "canceled": True,
        }
    )


def _unknown_timer_endpoint() -> Response:
    return error_envelope(404, "Unknown timer endpoint", "unknown_endpoint")


def register(router: Router, app: Application) -> None:
    """Add the timer routes."""
    router.add(
        ["/timers", "/timers/"],
        "timers",
        {"GET": partial(list_timers, app)},
        NotAllowedBody.ENVELOPE,
    )
    router.add(
        ["/timers/<timer_id>"],
        "timer",
        {"GET": partial(get_timer, app), "DELETE": partial(cancel_timer, app)},
        NotAllowedBody.ENVELOPE,
    )
    router.add_any_method(
        ["/timers/<subpath:rest>"],
        "timer_subpath",
        _unknown_timer_endpoint,
    )
