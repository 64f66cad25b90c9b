"""The optional bearer-token check of the admin API.

With a token configured, every request except ``GET /health`` must carry
``Authorization: Bearer <token>``. Without one the API is open, which is the
default. The comparison runs in constant time, and neither the expected nor the
presented token is ever logged.
"""

from __future__ import annotations

import hmac
from typing import Final

from quart import Response

from promptpipe.api.envelope import error_envelope
from promptpipe.api.errors import UNAUTHORIZED_MESSAGE

HEALTH_PATH: Final = "/health"
_SCHEME: Final = "bearer"


def is_exempt(method: str, path: str) -> bool:
    """Return whether a request needs no token: only ``GET /health`` is open."""
    return method == "GET" and path == HEALTH_PATH


def _header_bytes(value: str) -> bytes:
    # The server decodes header bytes as Latin-1, so encoding back gives the bytes
    # the client sent, including a token that it encoded as UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def has_valid_token(authorization: str | None, token: str) -> bool:
    """Return whether an ``Authorization`` header value carries ``token`` as bearer.

    The scheme name is case-insensitive. ``hmac.compare_digest`` compares the
    tokens, so the time taken does not reveal how much of a guess was right.
    """
    if authorization is None:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != _SCHEME:
        return False
    presented = _header_bytes(credentials.strip())
    return hmac.compare_digest(presented, token.encode("utf-8"))


def unauthorized() -> Response:
    """Return the 401 envelope with its ``WWW-Authenticate`` challenge."""
    return error_envelope(
        401,
        UNAUTHORIZED_MESSAGE,
        "unauthorized",
        {"WWW-Authenticate": "Bearer"},
    )
