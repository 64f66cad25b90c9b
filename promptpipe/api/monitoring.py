"""``GET /health`` and ``GET /metrics``.

``/health`` has no envelope and no token check. It counts the active participants
within ``HEALTH_TIMEOUT_SECONDS`` and responds with 503 ``degraded`` when that fails
or takes too long. ``/metrics`` writes the Prometheus text format.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Final

import trio
from quart import Response

from promptpipe.api.encoding import format_timestamp_seconds
from promptpipe.api.envelope import json_response
from promptpipe.api.errors import server_fault
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.errors import PromptPipeError
from promptpipe.metrics import METRICS_CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS: Final = 5.0


async def health(app: Application) -> Response:
    """Handle ``GET /health``: 200 ``healthy`` or 503 ``degraded``."""
    timestamp = format_timestamp_seconds(app.clock.now())
    try:
        with trio.fail_after(HEALTH_TIMEOUT_SECONDS):
            active = await app.count_active_participants()
    except (PromptPipeError, trio.TooSlowError):
        logger.error(
            "health check could not count the active participants",
            exc_info=True,
            extra={"event": "health_degraded"},
        )
        return json_response(
            {
                "status": "degraded",
                "timestamp": timestamp,
                "error": "Failed to fetch participant metrics",
            },
            503,
        )
    return json_response(
        {"status": "healthy", "timestamp": timestamp, "active_participants": active}
    )


async def metrics(app: Application, registry: Metrics) -> Response:
    """Handle ``GET /metrics``: the Prometheus text format."""
    try:
        text = await registry.render(app)
    except PromptPipeError as exc:
        logger.error(
            "metrics could not be collected",
            exc_info=True,
            extra={"event": "metrics_failed"},
        )
        raise server_fault("Failed to collect metrics", exc.code) from exc
    return Response(text, status=200, content_type=METRICS_CONTENT_TYPE)


def register(router: Router, app: Application, registry: Metrics) -> None:
    """Add the health and metrics routes."""
    router.add(
        ["/health"], "health", {"GET": partial(health, app)}, NotAllowedBody.EMPTY
    )
    router.add(
        ["/metrics"],
        "metrics",
        {"GET": partial(metrics, app, registry)},
        NotAllowedBody.ENVELOPE,
    )
