"""Response builders: the JSON envelope, bare JSON bodies, and plain-text errors.

Success envelope: ``{"status": "ok", "message": ..., "result": ...}`` with an empty
``message`` left out and ``result`` left out when a route passes none. Error envelope:
``{"status": "error", "message": ...}``. Every JSON body is sent as
``application/json`` and ends with a newline. A lone surrogate in a JSON body is sent
as U+FFFD, because UTF-8 cannot encode it and the response would fail instead.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Final

from quart import Response

from promptpipe.api.decoding import replace_lone_surrogates

JSON_CONTENT_TYPE: Final = "application/json"
TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
ERROR_CODE_HEADER: Final = "X-Error-Code"


class _NoResult(enum.Enum):
    NO_RESULT = "no result"


NO_RESULT: Final = _NoResult.NO_RESULT
"""Marker for "no ``result`` key", distinct from a ``None`` result (JSON ``null``)."""


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return ``payload`` as a JSON body."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"
    # A surrogate can occur only inside a JSON string, so replacing it in the text
    # keeps the document valid. Error messages quote request values, and without
    # this an error handler would fail on a value that contains a lone surrogate.
    body = replace_lone_surrogates(body)
    return Response(
        body, status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE
    )


def ok(message: str = "", result: object = NO_RESULT, *, status: int = 200) -> Response:
    """Return a success envelope."""
    payload: dict[str, object] = {"status": "ok"}
    if message:
        payload["message"] = message
    if result is not NO_RESULT:
        payload["result"] = result
    return json_response(payload, status)


def error_envelope(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Return an error envelope, with ``code`` in the ``X-Error-Code`` header."""
    all_headers = {ERROR_CODE_HEADER: code, **(headers or {})}
    return json_response({"status": "error", "message": message}, status, all_headers)


def empty(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """Return a response without a body and without a ``Content-Type``."""
    response = Response(b"", status=status, headers=dict(headers or {}))
    del response.headers["Content-Type"]
    return response


def plain_text(status: int, text: str) -> Response:
    """Return a plain-text body, as the router writes it for unknown paths."""
    return Response(text + "\n", status=status, content_type=TEXT_CONTENT_TYPE)
