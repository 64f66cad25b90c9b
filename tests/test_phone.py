"""Phone canonicalization and masking."""

from __future__ import annotations

import pytest

from promptpipe.errors import InvalidPhoneError
from promptpipe.phone import canonicalize_phone, mask_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234567890", "1234567890"),
        ("+1-234-567-8900", "12345678900"),
        ("(123) 456-7890", "1234567890"),
        ("123.456 7890", "1234567890"),
        ("123456", "123456"),
        ("123-456", "123456"),
        ("+1 (555) 123-4567", "15551234567"),
        ("0044 7700 900123", "447700900123"),
        ("+44 7700 900123", "447700900123"),
        ("+٤٤٧٧٠٠٩٠٠١٢٣", "447700900123"),
        # Full-width plus sign and digits, written as escapes.
        (
            "\uff0b\uff14\uff14\uff17\uff17\uff10\uff10\uff19\uff10\uff10\uff11\uff12\uff13",
            "447700900123",
        ),
        ("0612345678", "0612345678"),
    ],
)
def test_canonicalize_phone_accepts(raw: str, expected: str) -> None:
    assert canonicalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", r"^recipient cannot be empty$"),
        (
            "abc-def-ghij",
            r'^invalid phone number: no digits found in recipient "abc-def-ghij"$',
        ),
        (
            "+123",
            r'^invalid phone number: "123" is too short \(minimum 6 digits required\)$',
        ),
        (
            "123-45",
            r'^invalid phone number: "12345" is too short \(minimum 6 digits '
            r"required\)$",
        ),
        (
            "00 1234",
            r'^invalid phone number: "1234" is too short \(minimum 6 digits '
            r"required\)$",
        ),
        ("\x07", r'^invalid phone number: no digits found in recipient "\\x07"$'),
    ],
)
def test_canonicalize_phone_rejects(raw: str, message: str) -> None:
    with pytest.raises(InvalidPhoneError, match=message):
        canonicalize_phone(raw)


def test_two_spellings_are_one_person() -> None:
    assert canonicalize_phone("+1 555 010 2000") == canonicalize_phone("15550102000")
    assert canonicalize_phone("0015550102000") == canonicalize_phone("+15550102000")


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("15551234567", "*******4567"),
        ("+15551234567", "*******4567"),
        ("1234", "****"),
        ("", "***"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_canonicalize_phone_rejects_more_than_fifteen_digits() -> None:
    assert canonicalize_phone("+" + "1" * 15) == "1" * 15
    with pytest.raises(
        InvalidPhoneError,
        match=r"^invalid phone number: 16 digits is too long \(maximum 15 digits, "
        r"as in E\.164\)$",
    ):
        canonicalize_phone("1" * 16)
