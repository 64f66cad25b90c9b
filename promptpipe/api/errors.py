"""Errors that the admin API turns into error responses.

A route raises ``ApiError`` with the status and the exact message of the HTTP
contract; the application's error handler writes the error envelope. ``code`` is a
stable machine-readable name that travels in the ``X-Error-Code`` header, because
the envelope itself has no room for it.
"""

from __future__ import annotations

from typing import Final

from promptpipe.errors import PromptPipeError

INVALID_JSON_MESSAGE: Final = "Invalid JSON format"
METHOD_NOT_ALLOWED_MESSAGE: Final = "Method not allowed"
UNAUTHORIZED_MESSAGE: Final = "missing or invalid API token"


class ApiError(PromptPipeError):
    """An error response: HTTP ``status``, envelope ``message`` and a stable ``code``.

    Raising it before a route changed anything leaves the service untouched, which
    every 4xx relies on.
    """

    def __init__(self, status: int, message: str, code: str) -> None:
        self.status = status
        self.message = message
        self.code = code
        super().__init__(message)


def invalid_json() -> ApiError:
    """Return the 400 of a body that is not a JSON object of the expected types."""
    return ApiError(400, INVALID_JSON_MESSAGE, "invalid_json")


def bad_request(message: str, code: str) -> ApiError:
    """Return a 400 with ``message``."""
    return ApiError(400, message, code)


def not_found(message: str, code: str = "not_found") -> ApiError:
    """Return a 404 with ``message``."""
    return ApiError(404, message, code)


def server_fault(message: str, code: str) -> ApiError:
    """Return a 500 for a failure of the service itself, never of the request."""
    return ApiError(500, message, code)
