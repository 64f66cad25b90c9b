"""Phone-number canonicalization and masking.

A canonical phone is the string of ASCII digits left after these rules:

* every Unicode decimal digit counts, so Arabic-Indic or full-width digits map to the
  same ASCII digits as their ASCII spelling;
* every other character (``+``, spaces, dashes, dots, brackets, letters) is dropped;
* a leading ``00`` is the international call prefix and is dropped, so
  ``0044 7700 900123`` and ``+44 7700 900123`` are one person. No country code starts
  with ``0``, so a real number never loses digits this way;
* at least six digits must remain, and at most fifteen, the longest number E.164
  allows.

Canonical phones key participants, hooks, sends and inbound senders, so two spellings of
one number can never be enrolled twice.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from promptpipe.errors import InvalidPhoneError

MIN_PHONE_DIGITS: Final = 6
MAX_PHONE_DIGITS: Final = 15
_INTERNATIONAL_PREFIX: Final = "00"
_VISIBLE_TAIL_DIGITS: Final = 4


def _go_quote(value: str) -> str:
    """Quote like Go's ``%q``: double quotes, backslash escapes for non-printables."""
    parts = ['"']
    for char in value:
        if char in ('"', "\\"):
            parts.append("\\" + char)
        elif char == "\n":
            parts.append("\\n")
        elif char == "\t":
            parts.append("\\t")
        elif char == "\r":
            parts.append("\\r")
        elif char.isprintable():
            parts.append(char)
        elif ord(char) <= 0xFF:
            parts.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            parts.append(f"\\u{ord(char):04x}")
        else:
            parts.append(f"\\U{ord(char):08x}")
    parts.append('"')
    return "".join(parts)


def canonicalize_phone(recipient: str) -> str:
    """Return the canonical digit string of ``recipient``.

    Raises:
        InvalidPhoneError: the input is empty, has no digits, fewer than six or
            more than fifteen.
    """
    if recipient == "":
        raise InvalidPhoneError("recipient cannot be empty")

    digits = []
    for char in recipient:
        value = unicodedata.decimal(char, None)
        if value is not None:
            digits.append(str(value))
    if not digits:
        raise InvalidPhoneError(
            f"invalid phone number: no digits found in recipient {_go_quote(recipient)}"
        )

    canonical = "".join(digits)
    if canonical.startswith(_INTERNATIONAL_PREFIX):
        canonical = canonical[len(_INTERNATIONAL_PREFIX) :]
    if len(canonical) < MIN_PHONE_DIGITS:
        raise InvalidPhoneError(
            f"invalid phone number: {_go_quote(canonical)} is too short "
            f"(minimum {MIN_PHONE_DIGITS} digits required)"
        )
    if len(canonical) > MAX_PHONE_DIGITS:
        raise InvalidPhoneError(
            f"invalid phone number: {len(canonical)} digits is too long "
            f"(maximum {MAX_PHONE_DIGITS} digits, as in E.164)"
        )
    return canonical


def mask_phone(phone: str) -> str:
    """Mask a phone number for logs, keeping only its last four digits.

    Any string is accepted: non-digits are dropped first, and a value with four digits
    or fewer is masked completely.
    """
    digits = "".join(char for char in phone if char.isdigit())
    if len(digits) <= _VISIBLE_TAIL_DIGITS:
        return "*" * len(digits) if digits else "***"
    hidden = len(digits) - _VISIBLE_TAIL_DIGITS
    return "*" * hidden + digits[-_VISIBLE_TAIL_DIGITS:]
