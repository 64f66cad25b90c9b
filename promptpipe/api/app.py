"""The QuartTrio application of the admin API: routes, token check and error handlers.

``create_api`` wires every route group to one ``Application``. Error handling has
one place: a route raises ``ApiError`` and the handler here writes the envelope. A
body over the size limit is a 413 envelope, an unknown path the router's plain-text
404, and any other exception a logged 500 envelope that reveals nothing of the
fault. Request and response bodies and the token never reach a log.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from promptpipe.api import (
    console,
    messages,
    monitoring,
    participants,
    records,
    timers,
)
from promptpipe.api.auth import has_valid_token, is_exempt, unauthorized
from promptpipe.api.envelope import error_envelope, json_response, plain_text
from promptpipe.api.errors import METHOD_NOT_ALLOWED_MESSAGE, ApiError
from promptpipe.api.openapi import build_openapi
from promptpipe.api.routing import ExactPathApp, NotAllowedBody, Router
from promptpipe.metrics import Metrics
from promptpipe.transport.console import ConsoleTransport

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)

# Rejected requests are logged at most once per window, so an unauthenticated
# client cannot flood the log. The next warning contains the number suppressed.
UNAUTHORIZED_LOG_WINDOW_SECONDS: Final = 1.0

NOT_FOUND_TEXT: Final = "404 page not found"
INTERNAL_ERROR_MESSAGE: Final = "Internal server error"


async def _openapi_document(document: dict[str, Any]) -> Response:
    return json_response(document)


def _install_error_handlers(
    quart_app: QuartTrio, router: Router, max_body_bytes: int
) -> None:
    async def api_error(error: ApiError) -> Response:
        return error_envelope(error.status, error.message, error.code)

    async def too_large(_error: RequestEntityTooLarge) -> Response:
        message = f"request body too large: limit is {max_body_bytes} bytes"
        return error_envelope(413, message, "body_too_large")

    async def not_found(_error: NotFound) -> Response:
        return plain_text(404, NOT_FOUND_TEXT)

    async def unrouted_method(error: MethodNotAllowed) -> Response:
        response = router.respond_to_unrouted_method()
        if response is not None:
            return response
        headers = {"Allow": ", ".join(error.valid_methods or ())}
        return error_envelope(
            405, METHOD_NOT_ALLOWED_MESSAGE, "method_not_allowed", headers
        )

    async def other_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = (error.name or "error").lower()
        return error_envelope(status, message, "http_error")

    async def unexpected(_error: Exception) -> Response:
        logger.error(
            "unexpected error in %s %s",
            request.method,
            request.path,
            exc_info=True,
            extra={"event": "api_unexpected_error"},
        )
        return error_envelope(500, INTERNAL_ERROR_MESSAGE, "internal_error")

    quart_app.register_error_handler(ApiError, api_error)
    quart_app.register_error_handler(RequestEntityTooLarge, too_large)
    quart_app.register_error_handler(NotFound, not_found)
    quart_app.register_error_handler(MethodNotAllowed, unrouted_method)
    quart_app.register_error_handler(HTTPException, other_http_error)
    quart_app.register_error_handler(Exception, unexpected)


@dataclass
class _LogThrottle:
    """One warning per window for rejected requests; the rest are counted."""

    window_start: float = -math.inf
    suppressed: int = 0


def _install_token_check(quart_app: QuartTrio, token: str) -> None:
    throttle = _LogThrottle()

    async def check_token() -> Response | None:
        if is_exempt(request.method, request.path):
            return None
        if has_valid_token(request.headers.get("Authorization"), token):
            return None
        now = time.monotonic()
        if now - throttle.window_start >= UNAUTHORIZED_LOG_WINDOW_SECONDS:
            suppressed = throttle.suppressed
            throttle.window_start, throttle.suppressed = now, 0
            # Only the first path segment: the rest may hold a phone number, or a
            # token sent in the wrong place.
            logger.warning(
                "rejected %s /%s...: missing or invalid API token",
                request.method[:16],
                request.path.lstrip("/").split("/", 1)[0][:32],
                extra={"event": "api_unauthorized", "suppressed": suppressed},
            )
        else:
            throttle.suppressed += 1
        return unauthorized()

    quart_app.before_request(check_token)


def _install_metrics_hook(
    quart_app: QuartTrio, app: Application, metrics: Metrics
) -> None:
    async def attach_when_ready() -> None:
        await app.ready.wait()
        metrics.attach(app)

    async def start() -> None:
        if app.ready.is_set():
            metrics.attach(app)
        else:
            quart_app.add_background_task(attach_when_ready)

    if app.ready.is_set():
        metrics.attach(app)
    quart_app.before_serving(start)


def create_api(
    app: Application,
    *,
    token: str,
    max_body_bytes: int,
    console_enabled: bool,
    metrics: Metrics | None = None,
) -> QuartTrio:
    """Build the admin API of ``app``.

    Args:
        app: The application every route operates on.
        token: The bearer token every route but ``GET /health`` requires; an
            empty string leaves the API open.
        max_body_bytes: The largest request body accepted; larger ones get a 413.
        console_enabled: Add ``POST /console/inbound``; ``app.transport`` must be
            a ``ConsoleTransport``.
        metrics: The registry ``/metrics`` serves; a new one when omitted. Pass the
            one whose ``InstrumentedChatModel`` wraps the application's LLM.

    Raises:
        ValueError: ``max_body_bytes`` is below 1, or ``console_enabled`` is set
            while the transport is not the console transport.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes!r}")
    transport = app.transport
    if console_enabled and not isinstance(transport, ConsoleTransport):
        raise ValueError(
            "console_enabled needs the console transport, but the application "
            f"uses {transport.name!r}; start with --transport console"
        )
    metrics = metrics or Metrics()

    quart_app = ExactPathApp(__name__, static_folder=None)
    quart_app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    # The metrics waiter is the only background task; stop it at once on shutdown.
    quart_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0
    router = Router(quart_app)
    messages.register(router, app)
    records.register(router, app)
    timers.register(router, app)
    participants.register(router, app)
    monitoring.register(router, app, metrics)
    document = build_openapi(console_enabled=console_enabled)
    openapi_view = partial(_openapi_document, document)
    router.add(
        ["/openapi.json"], "openapi", {"GET": openapi_view}, NotAllowedBody.ENVELOPE
    )
    if isinstance(transport, ConsoleTransport) and console_enabled:
        console.register(router, transport)

    _install_error_handlers(quart_app, router, max_body_bytes)
    if token:
        _install_token_check(quart_app, token)
    _install_metrics_hook(quart_app, app, metrics)
    return quart_app
