"""Routes with their allowed methods, and the 405 response each route gives.

Every rule is registered for all of ``ROUTED_METHODS`` and dispatches on the request
method itself, so a wrong method reaches the route's own 405. That response has an
empty body on the message endpoints and the error envelope on the others, and its
``Allow`` header lists exactly the allowed methods. ``HEAD`` and ``OPTIONS`` get the
same 405 as any other method the route lacks. A method token outside
``ROUTED_METHODS`` makes werkzeug raise ``MethodNotAllowed`` before dispatch, and
``Router.respond_to_unrouted_method`` gives the same response for it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from quart import Response, request
from werkzeug.exceptions import HTTPException

from promptpipe.api.envelope import empty, error_envelope
from promptpipe.api.errors import METHOD_NOT_ALLOWED_MESSAGE

if TYPE_CHECKING:
    from quart_trio import QuartTrio

View = Callable[..., Awaitable[Response]]

ROUTED_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class NotAllowedBody(enum.Enum):
    """The body of a route's 405 response."""

    EMPTY = "empty"
    ENVELOPE = "envelope"


@dataclass(frozen=True)
class _Route:
    handlers: Mapping[str, View]
    not_allowed: Callable[[], Response]


def method_not_allowed(allow: str, body: NotAllowedBody) -> Response:
    """Return the 405 of a route whose allowed methods are ``allow``."""
    headers = {"Allow": allow}
    if body is NotAllowedBody.EMPTY:
        return empty(405, headers)
    return error_envelope(
        405, METHOD_NOT_ALLOWED_MESSAGE, "method_not_allowed", headers
    )


class Router:
    """Registers routes on a Quart app and remembers their 405 responses."""

    def __init__(self, app: QuartTrio) -> None:
        self._app = app
        self._routes: dict[str, _Route] = {}

    def add(
        self,
        rules: Sequence[str],
        endpoint: str,
        handlers: Mapping[str, View],
        not_allowed_body: NotAllowedBody,
    ) -> None:
        """Route ``rules`` to ``handlers`` by method; other methods get a 405."""
        allow = ", ".join(handlers)

        def not_allowed() -> Response:
            return method_not_allowed(allow, not_allowed_body)

        self._register(rules, endpoint, _Route(dict(handlers), not_allowed))

    def add_any_method(
        self, rules: Sequence[str], endpoint: str, respond: Callable[[], Response]
    ) -> None:
        """Route ``rules`` to ``respond`` whatever the method, for fixed 404s."""
        view = _constant_view(respond)
        handlers = dict.fromkeys(ROUTED_METHODS, view)
        self._register(rules, endpoint, _Route(handlers, respond))

    def _register(self, rules: Sequence[str], endpoint: str, route: _Route) -> None:
        self._routes[endpoint] = route

        async def dispatch(**arguments: Any) -> Response:
            handler = route.handlers.get(request.method)
            if handler is None:
                return route.not_allowed()
            return await handler(**arguments)

        for rule in rules:
            self._app.add_url_rule(
                rule,
                endpoint,
                dispatch,
                methods=ROUTED_METHODS,
                provide_automatic_options=False,
            )

    def respond_to_unrouted_method(self) -> Response | None:
        """Return the response of the current path to a method outside the routes.

        Returns None when no route of this router matches the path.
        """
        adapter = self._app.create_url_adapter(request)
        if adapter is None:
            return None
        try:
            rule, _ = adapter.match(method="GET", return_rule=True)
        except HTTPException:
            return None
        route = self._routes.get(rule.endpoint)
        return route.not_allowed() if route is not None else None


def _constant_view(respond: Callable[[], Response]) -> View:
    async def view(**_arguments: Any) -> Response:
        return respond()

    return view
