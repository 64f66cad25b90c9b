"""``POST /console/inbound``: inject an inbound message into the console transport.

Registered only when the service runs the console transport. A text is
``{"from": <phone>, "text": ..., "id": <optional message id>}`` and a poll vote is
``{"from": <phone>, "poll_id": <wire id of our poll>, "options": [<option text>]}``.
The message enters the transport's inbound channel, the path WhatsApp messages
take, so deduplication by ``id``, hooks and the conversation engine all apply.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from quart import Response

from promptpipe.api.decoding import (
    JsonObject,
    clean_text,
    read_json_object,
    read_list,
    read_text,
)
from promptpipe.api.envelope import ok
from promptpipe.api.errors import ApiError, bad_request, invalid_json
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.errors import InvalidPhoneError, TransportError
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.transport.console import InboundNotRecordedError

if TYPE_CHECKING:
    from promptpipe.transport.console import ConsoleTransport

logger = logging.getLogger(__name__)


def _read_options(obj: JsonObject) -> list[str]:
    options = []
    for index, item in enumerate(read_list(obj, "options") or []):
        if not isinstance(item, str):
            raise invalid_json()
        options.append(clean_text(item, f"options[{index}]"))
    if not options:
        raise bad_request(
            "options must list at least one selected option text", "missing_options"
        )
    return options


def _read_sender(obj: JsonObject) -> str:
    sender = read_text(obj, "from") or ""
    if sender == "":
        raise bad_request("from is required", "missing_sender")
    try:
        return canonicalize_phone(sender)
    except InvalidPhoneError as exc:
        raise bad_request(str(exc), exc.code) from exc


async def inbound(transport: ConsoleTransport) -> Response:
    """Handle ``POST /console/inbound``: accept one text or poll vote with 202."""
    obj = await read_json_object()
    sender = _read_sender(obj)
    message_id = read_text(obj, "id") or None
    text = read_text(obj, "text") or ""
    poll_id = read_text(obj, "poll_id") or ""
    if text and poll_id:
        raise bad_request(
            "text and poll_id cannot be combined; send a text or a poll vote",
            "ambiguous_inbound",
        )
    if not text and not poll_id:
        raise bad_request("text or poll_id is required", "missing_text")
    options = _read_options(obj) if poll_id else []

    try:
        if text:
            injected = await transport.inject_text(message_id, sender, text)
        else:
            injected = await transport.inject_poll_vote(
                message_id, sender, poll_id, options
            )
    except InboundNotRecordedError as exc:
        raise ApiError(503, str(exc), exc.code) from exc
    except TransportError as exc:
        raise ApiError(503, "console transport is not running", exc.code) from exc
    logger.info(
        "console message injected",
        extra={"event": "console_inbound", "phone": mask_phone(sender)},
    )
    return ok("Message accepted", {"id": injected.message_id}, status=202)


def register(router: Router, transport: ConsoleTransport) -> None:
    """Add the console inbound route."""
    router.add(
        ["/console/inbound"],
        "console_inbound",
        {"POST": partial(inbound, transport)},
        NotAllowedBody.ENVELOPE,
    )
