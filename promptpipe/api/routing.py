"""Routes with their allowed methods, and the 405 response each route gives.

Every rule is registered for all of ``ROUTED_METHODS`` and dispatches on the request
method itself, so a wrong method reaches the route's own 405. That response has an
empty body on the message endpoints and the error envelope on the others, and its
``Allow`` header lists exactly the allowed methods. ``HEAD`` and ``OPTIONS`` get the
same 405 as any other method the route lacks. A method token outside
``ROUTED_METHODS`` makes werkzeug raise ``MethodNotAllowed`` before dispatch, and
``Router.respond_to_unrouted_method`` gives the same response for it.

Paths match exactly. The map does not merge repeated slashes, and ``ExactPathApp``
rejects a path that starts with ``//``, which werkzeug would strip to one slash, so
``//send`` is a 404 rather than ``/send``. Werkzeug responds to a path that lacks the
trailing slash of a rule with a redirect whose ``Location`` comes from the client's
``Host`` header. Each rule that ends with a slash therefore has a twin without it, and
``ExactPathApp`` turns any redirect that routing still produces into a 404. The
``subpath`` converter lets one rule take every other path below a prefix, empty
segments included, such as ``/timers//``, which is what a request for ``/timers/%2F``
decodes to.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

from quart import Response, request
from quart.globals import request_ctx
from quart.routing import QuartMap
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import BaseConverter, RequestRedirect

from promptpipe.api.envelope import empty, error_envelope
from promptpipe.api.errors import METHOD_NOT_ALLOWED_MESSAGE

if TYPE_CHECKING:
    from quart.ctx import RequestContext
    from quart.typing import ResponseReturnValue
    from quart.wrappers import BaseRequestWebsocket

View = Callable[..., Awaitable[Response]]

ROUTED_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _SubpathConverter(BaseConverter):
    """One or more characters, slashes included: the rest of a path below a prefix.

    Unlike werkzeug's ``path`` converter it also matches a rest that starts with a
    slash. Its weight sorts it after ``default`` (100) and ``path`` (200), so a rule
    using it only takes paths that no other rule matches.
    """

    regex = "(?s:.+)"
    part_isolating = False
    weight = 400


class ExactPathMap(QuartMap):
    """A URL map without slash merging or redirects to rules with default values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(merge_slashes=False, redirect_defaults=False)
        super().__init__(*args, **kwargs)
        self.converters["subpath"] = _SubpathConverter


class ExactPathApp(QuartTrio):
    """A QuartTrio app that routes exact paths and never responds with a redirect."""

    url_map_class = ExactPathMap

    async def dispatch_request(
        self, request_context: RequestContext | None = None
    ) -> ResponseReturnValue:
        """Dispatch the request to its view, with a 404 for a path starting ``//``.

        Werkzeug strips the leading slashes of ``request.path``, so without this
        check ``//send`` would reach ``/send``. The ASGI scope keeps the path as
        sent. The check runs after the ``before_request`` hooks, so the token check
        still comes first.
        """
        current = (request_context or request_ctx).request
        if current.scope["path"].startswith("//"):
            raise NotFound()
        return await super().dispatch_request(request_context)

    def raise_routing_exception(self, request: BaseRequestWebsocket) -> NoReturn:
        """Raise the routing failure of ``request``, a 404 in place of a redirect."""
        failure = request.routing_exception
        if isinstance(failure, RequestRedirect):
            raise NotFound() from failure
        super().raise_routing_exception(request)


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
