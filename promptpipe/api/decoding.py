"""Request bodies: strict JSON objects, typed field reads and the rules for text.

A body decodes when it is UTF-8 JSON text holding one object, with nothing after it
and without the ``NaN`` or ``Infinity`` literals. A field that is missing or ``null``
is absent, and unknown fields are ignored. A field of the wrong JSON type makes the
whole body invalid, as an undecodable body does: both are the contract's 400
``Invalid JSON format``.

Decoding replaces every lone UTF-16 surrogate escape such as ``"\\ud800"`` with
U+FFFD, as Go's decoder does, in every key and string of the body before any route
reads it, because UTF-8 cannot encode a lone surrogate. Text fields may not contain
NUL (U+0000), because PostgreSQL text columns cannot store it. The rule applies on
every store, so a body that one store would reject is rejected everywhere.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn, TypeAlias

from quart import request

from promptpipe.api.errors import bad_request, invalid_json

JsonObject: TypeAlias = dict[str, Any]

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def replace_lone_surrogates(text: str) -> str:
    """Return ``text`` with each lone UTF-16 surrogate replaced by U+FFFD.

    A surrogate pair escape such as ``"\\ud83d\\ude00"`` decodes to one code point
    outside the surrogate range, so only unpaired halves are replaced.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


def _clean_string(value: object) -> object:
    return replace_lone_surrogates(value) if isinstance(value, str) else value


def _replace_all_lone_surrogates(root: JsonObject) -> None:
    """Replace lone surrogates in every key and string below ``root``, in place.

    The walk uses an explicit stack, because a body nested as deep as the decoder
    allows would exceed the interpreter's recursion limit in a recursive walk.
    """
    pending: list[JsonObject | list[Any]] = [root]
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            for index, item in enumerate(container):
                container[index] = _clean_string(item)
            children = container
        else:
            items = [
                (replace_lone_surrogates(key), value)
                for key, value in container.items()
            ]
            # Rebuilding keeps the key order. Two keys that differ only in their lone
            # surrogates merge, and the later one wins, as with a duplicate key.
            container.clear()
            container.update((key, _clean_string(value)) for key, value in items)
            children = list(container.values())
        pending.extend(child for child in children if isinstance(child, dict | list))


def parse_json_object(data: bytes) -> JsonObject:
    """Decode ``data`` as one JSON object.

    Raises:
        ApiError: 400 ``Invalid JSON format`` for anything but a UTF-8 JSON object.
    """
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and integers longer
    # than the interpreter's digit limit; RecursionError covers deep nesting.
    except (ValueError, RecursionError) as exc:
        raise invalid_json() from exc
    if not isinstance(value, dict):
        raise invalid_json()
    _replace_all_lone_surrogates(value)
    return value


async def read_json_object() -> JsonObject:
    """Read the request body, at most the configured size, as one JSON object.

    Raises:
        RequestEntityTooLarge: the body exceeds the application's size limit.
        ApiError: 400 ``Invalid JSON format``.
    """
    data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return parse_json_object(data)


def clean_text(value: str, field: str) -> str:
    """Check the value of ``field`` for NUL and return it.

    ``parse_json_object`` has already replaced lone surrogates.

    Raises:
        ApiError: 400 when the text contains a NUL character.
    """
    if "\x00" in value:
        raise bad_request(
            f"field {field} contains a NUL character (U+0000), which cannot be "
            "stored; remove it",
            "nul_character",
        )
    return value


def read_text(obj: JsonObject, name: str, field: str | None = None) -> str | None:
    """Return the text of ``obj[name]``, or None when it is missing or null.

    ``field`` names the value in error messages; it defaults to ``name``.

    Raises:
        ApiError: 400 ``Invalid JSON format`` when the value is not a string, or 400
            for a NUL character.
    """
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_json()
    return clean_text(value, field or name)


def read_list(obj: JsonObject, name: str) -> list[Any] | None:
    """Return the array ``obj[name]``, or None when it is missing or null.

    Raises:
        ApiError: 400 ``Invalid JSON format`` when the value is not an array.
    """
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_json()
    return value


def as_object(value: object) -> JsonObject:
    """Return ``value`` as an object, with ``null`` read as ``{}`` as Go reads it.

    Raises:
        ApiError: 400 ``Invalid JSON format`` for any other JSON type.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_json()
    return value


def read_int64(obj: JsonObject, name: str) -> int | None:
    """Return the integer ``obj[name]``, or None when it is missing or null.

    Raises:
        ApiError: 400 ``Invalid JSON format`` unless the value is a JSON integer
            within the signed 64-bit range. ``1.0`` and ``true`` are not integers.
    """
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_json()
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise invalid_json()
    return value
