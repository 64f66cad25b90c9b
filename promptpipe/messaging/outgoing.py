"""Build the outbox rows for each kind of outgoing message.

Every message the service sends is first an ``outbox_messages`` row written in the
same transaction as the state change that caused it. The payload is a JSON object:

* text: ``{"to": <digits>, "body": <text>}``;
* poll: ``{"to": <digits>, "poll": {"question": <q>, "options": [...]}}``.

Optional keys: ``requires`` names the outbox id that must be sent first (if it fails
for good, this row is canceled with it), and ``receipt: false`` suppresses the ``sent``
receipt (the engagement poll that follows a prompt shares the prompt's receipt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from promptpipe.flow.profile import ENGAGEMENT_POLL_OPTIONS, ENGAGEMENT_POLL_QUESTION
from promptpipe.models import NewOutboxMessage

KIND_REPLY: Final = "reply"
KIND_PROMPT: Final = "prompt"
KIND_POLL: Final = "poll"
KIND_REMINDER: Final = "reminder"
KIND_FEEDBACK: Final = "feedback_followup"
KIND_DEBUG: Final = "debug"
KIND_NOTICE: Final = "notice"


@dataclass(frozen=True)
class OutgoingText:
    """A parsed text payload."""

    to: str
    body: str


@dataclass(frozen=True)
class OutgoingPoll:
    """A parsed poll payload."""

    to: str
    question: str
    options: tuple[str, ...]


def text_message(
    owner: str,
    to: str,
    body: str,
    kind: str = KIND_REPLY,
    dedupe_key: str | None = None,
    requires: str | None = None,
) -> NewOutboxMessage:
    """Return the row of one text message to ``to``, queued under ``owner``.

    ``owner`` is the participant id when the message belongs to a conversation, else
    the phone; each owner's messages are sent in the order they were written.
    """
    if not body.strip():
        raise ValueError("message body cannot be empty")
    payload: dict[str, Any] = {"to": to, "body": body}
    if requires:
        payload["requires"] = requires
    return NewOutboxMessage(
        participant_id=owner, kind=kind, payload=payload, dedupe_key=dedupe_key
    )


def poll_message(
    owner: str,
    to: str,
    question: str,
    options: tuple[str, ...],
    *,
    requires: str | None = None,
    receipt: bool = True,
    dedupe_key: str | None = None,
) -> NewOutboxMessage:
    """Return the row of one single-choice poll."""
    payload: dict[str, Any] = {
        "to": to,
        "poll": {"question": question, "options": list(options)},
    }
    if requires:
        payload["requires"] = requires
    if not receipt:
        payload["receipt"] = False
    return NewOutboxMessage(
        participant_id=owner, kind=KIND_POLL, payload=payload, dedupe_key=dedupe_key
    )


def prompt_with_poll(
    owner: str,
    to: str,
    body: str,
    kind: str = KIND_PROMPT,
    dedupe_key: str | None = None,
) -> list[NewOutboxMessage]:
    """Return a prompt text followed by the engagement poll, with one receipt.

    The poll requires the text, so a text that fails for good takes the poll with it.
    """
    if not body.strip():
        raise ValueError("message body cannot be empty")
    text = text_message(owner, to, body, kind=kind, dedupe_key=dedupe_key)
    poll = poll_message(
        owner,
        to,
        ENGAGEMENT_POLL_QUESTION,
        ENGAGEMENT_POLL_OPTIONS,
        requires=text.id,
        receipt=False,
        dedupe_key=f"{dedupe_key}:poll" if dedupe_key else None,
    )
    return [text, poll]


def parse_payload(
    payload: dict[str, Any], fallback_to: str
) -> OutgoingText | OutgoingPoll:
    """Interpret a stored payload; ``fallback_to`` is used when ``to`` is empty.

    Raises:
        ValueError: the payload is neither a text nor a poll.
    """
    to = str(payload.get("to") or fallback_to)
    poll = payload.get("poll")
    if isinstance(poll, dict):
        question = poll.get("question")
        options = poll.get("options")
        if not isinstance(question, str) or not isinstance(options, list):
            raise ValueError("poll payload needs a question and a list of options")
        return OutgoingPoll(to, question, tuple(str(option) for option in options))
    body = payload.get("body")
    if not isinstance(body, str):
        raise ValueError("text payload needs a string body")
    return OutgoingText(to, body)
