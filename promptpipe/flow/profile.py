"""The participant's user profile, its one loader, and the poll texts that change it.

The profile is stored as JSON in ``state_data["userProfile"]``. ``load_profile`` is the
only way to read it: a missing profile becomes a default one, and an unreadable one
raises ``ProfileCorruptError`` so that no caller overwrites it. Everything here is pure.
Callers pass the time in and persist what is returned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from promptpipe.errors import PromptPipeError
from promptpipe.flow.tone import (
    Tone,
    apply_tone_update,
    format_stored_time,
    parse_stored_time,
    require_aware,
    validate_proposal,
)

logger = logging.getLogger(__name__)

INTENSITY_LOW: Final = "low"
INTENSITY_NORMAL: Final = "normal"
INTENSITY_HIGH: Final = "high"
INTENSITY_LEVELS: Final[tuple[str, ...]] = (
    INTENSITY_LOW,
    INTENSITY_NORMAL,
    INTENSITY_HIGH,
)
DEFAULT_INTENSITY: Final = INTENSITY_NORMAL

INTENSITY_POLL_QUESTION: Final = "How's the intensity?"
OPTION_DECREASE: Final = "Decrease"
OPTION_KEEP_CURRENT: Final = "Keep current"
OPTION_INCREASE: Final = "Increase"
_INTENSITY_POLL_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    INTENSITY_LOW: (OPTION_KEEP_CURRENT, OPTION_INCREASE),
    INTENSITY_NORMAL: (OPTION_DECREASE, OPTION_KEEP_CURRENT, OPTION_INCREASE),
    INTENSITY_HIGH: (OPTION_DECREASE, OPTION_KEEP_CURRENT),
}
_DECREASED: Final[Mapping[str, str]] = {
    INTENSITY_NORMAL: INTENSITY_LOW,
    INTENSITY_HIGH: INTENSITY_NORMAL,
}
_INCREASED: Final[Mapping[str, str]] = {
    INTENSITY_LOW: INTENSITY_NORMAL,
    INTENSITY_NORMAL: INTENSITY_HIGH,
}

ENGAGEMENT_POLL_QUESTION: Final = "Did you do it?"
ENGAGEMENT_POLL_OPTIONS: Final[tuple[str, ...]] = ("Done", "Next time")
DONE_VOTE_TEXT: Final = "Q: Did you do it? A: Done"
# Answer text of a poll vote whose selected options matched none of the poll's options.
UNMATCHED_POLL_ANSWER: Final = "[responded]"

# save_user_profile copies these arguments in this order, which is also the order of
# the updated field names it reports.
PROFILE_TEXT_FIELDS: Final[tuple[str, ...]] = (
    "habit_domain",
    "motivational_frame",
    "last_motivator",
    "preferred_time",
    "prompt_anchor",
    "additional_info",
    "last_successful_prompt",
    "last_barrier",
    "last_tweak",
)
TONE_FIELD: Final = "tone"

_HEAD_TEXT_FIELDS: Final[tuple[str, ...]] = (
    "habit_domain",
    "motivational_frame",
    "preferred_time",
    "prompt_anchor",
    "additional_info",
)
_LAST_FIELDS: Final[tuple[str, ...]] = (
    "last_successful_prompt",
    "last_barrier",
    "last_tweak",
    "last_motivator",
)
_LEGACY_BARRIER_KEY: Final = "last_blocker"

_NOOP_MESSAGE: Final = "Profile already contains these values; nothing was changed."


class ProfileCorruptError(PromptPipeError):
    """The stored profile JSON cannot be read; it must be repaired, not overwritten."""

    code = "profile_corrupt"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"stored user profile is invalid ({reason}) and is never overwritten, "
            "so fix or delete the userProfile value by hand"
        )


@dataclass(frozen=True)
class UserProfile:
    """A participant's habit profile, counters, intensity and tone.

    A ``created_at`` or ``updated_at`` of None stands for Go's zero time, which older
    stored profiles may contain.
    """

    habit_domain: str = ""
    motivational_frame: str = ""
    preferred_time: str = ""
    prompt_anchor: str = ""
    additional_info: str = ""
    intensity: str = DEFAULT_INTENSITY
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_successful_prompt: str = ""
    last_barrier: str = ""
    last_tweak: str = ""
    last_motivator: str = ""
    success_count: int = 0
    total_prompts: int = 0
    tone: Tone = field(default_factory=Tone)

    def to_dict(self) -> dict[str, Any]:
        """Return the stored JSON object in key order, without empty ``last_*`` keys."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _HEAD_TEXT_FIELDS}
        data["intensity"] = self.intensity
        data["created_at"] = format_stored_time(self.created_at)
        data["updated_at"] = format_stored_time(self.updated_at)
        for name in _LAST_FIELDS:
            value = getattr(self, name)
            if value:
                data[name] = value
        data["success_count"] = self.success_count
        data["total_prompts"] = self.total_prompts
        data["tone"] = self.tone.to_dict()
        return data

    def to_json(self) -> str:
        """Serialize the profile as compact JSON for ``state_data["userProfile"]``."""
        return _dump_json(self.to_dict())


def _dump_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def default_profile(now: datetime) -> UserProfile:
    """Return a new, unsaved profile with intensity ``normal`` created at ``now``.

    Raises:
        ValueError: ``now`` is naive.
    """
    require_aware(now, "now")
    return UserProfile(created_at=now, updated_at=now)


def _read_string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProfileCorruptError(f"{key} must be a string, got {value!r}")
    return value


def _read_count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None:
        return 0
    # Counters written by other tools may come back as floats such as 2.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileCorruptError(f"{key} must be an integer, got {value!r}")
    return value


def _read_time(data: Mapping[str, Any], key: str) -> datetime | None:
    try:
        return parse_stored_time(data.get(key), key)
    except ValueError as exc:
        raise ProfileCorruptError(str(exc)) from exc


def _read_tone(data: Mapping[str, Any]) -> Tone:
    raw = data.get("tone")
    if raw is None:
        return Tone()
    if not isinstance(raw, dict):
        raise ProfileCorruptError(f"tone must be an object, got {raw!r}")
    try:
        return Tone.from_dict(raw)
    except ValueError as exc:
        raise ProfileCorruptError(f"tone: {exc}") from exc


def load_profile(raw: str | None, now: datetime) -> UserProfile:
    """Parse the stored profile, or return a default profile when none is stored.

    A missing or blank value gives ``default_profile(now)``. A legacy ``last_blocker``
    fills an empty ``last_barrier``. A missing or empty intensity becomes ``normal``,
    and a tone version of 0 becomes 1. Integral floats are accepted as counters.

    Raises:
        ProfileCorruptError: the value is not a JSON object or a key contains a value of
            the wrong type. Callers must leave the stored value untouched.
        ValueError: ``now`` is naive.
    """
    require_aware(now, "now")
    if raw is None or not raw.strip():
        return default_profile(now)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProfileCorruptError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileCorruptError(f"expected a JSON object, got {type(data).__name__}")

    last_barrier = _read_string(data, "last_barrier")
    if not last_barrier:
        last_barrier = _read_string(data, _LEGACY_BARRIER_KEY)

    return UserProfile(
        habit_domain=_read_string(data, "habit_domain"),
        motivational_frame=_read_string(data, "motivational_frame"),
        preferred_time=_read_string(data, "preferred_time"),
        prompt_anchor=_read_string(data, "prompt_anchor"),
        additional_info=_read_string(data, "additional_info"),
        intensity=_read_string(data, "intensity") or DEFAULT_INTENSITY,
        created_at=_read_time(data, "created_at"),
        updated_at=_read_time(data, "updated_at"),
        last_successful_prompt=_read_string(data, "last_successful_prompt"),
        last_barrier=last_barrier,
        last_tweak=_read_string(data, "last_tweak"),
        last_motivator=_read_string(data, "last_motivator"),
        success_count=_read_count(data, "success_count"),
        total_prompts=_read_count(data, "total_prompts"),
        tone=_read_tone(data),
    )


@dataclass(frozen=True)
class ProfileUpdateResult:
    """The outcome of one ``save_user_profile`` call.

    ``updated_fields`` lists the changed field names in update order, with ``tone``
    last when the tone changed. ``tool_result`` is the text returned to the model.
    """

    profile: UserProfile
    updated_fields: tuple[str, ...]
    tool_result: str

    @property
    def changed(self) -> bool:
        """Whether the profile changed and must be saved."""
        return bool(self.updated_fields)


def _success_text(fields: Sequence[str], profile: UserProfile) -> str:
    noun = "field" if len(fields) == 1 else "fields"
    head = f"SUCCESS: updated {len(fields)} profile {noun}: {', '.join(fields)}"
    body = {
        "status": "success",
        "updated_fields": list(fields),
        "profile_snapshot": profile.to_dict(),
    }
    return f"{head}\n{_dump_json(body)}"


def _noop_text(profile: UserProfile) -> str:
    head = "NOOP: the profile already held these values, so nothing was saved"
    body = {
        "status": "noop",
        "message": _NOOP_MESSAGE,
        "profile_snapshot": profile.to_dict(),
    }
    return f"{head}\n{_dump_json(body)}"


def _merge_text_fields(
    profile: UserProfile, arguments: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    args = dict(arguments)
    blocker = args.pop(_LEGACY_BARRIER_KEY, None)
    barrier = args.get("last_barrier")
    has_barrier = isinstance(barrier, str) and barrier != ""
    if isinstance(blocker, str) and blocker and not has_barrier:
        args["last_barrier"] = blocker

    changes: dict[str, Any] = {}
    for name in PROFILE_TEXT_FIELDS:
        value = args.get(name)
        # Empty strings and non-strings never clear or change a stored value.
        if isinstance(value, str) and value and value != getattr(profile, name):
            changes[name] = value
    return changes, list(changes)


def _update_tone(
    tone: Tone, arguments: Mapping[str, Any], now: datetime
) -> tuple[Tone, bool]:
    raw_tags = arguments.get("tone_tags")
    if not isinstance(raw_tags, list | tuple):
        raw_tags = ()
    # tone_confidence is part of the tool schema but does not affect the update.
    proposal = validate_proposal(raw_tags, source=arguments.get("tone_update_source"))
    if proposal.is_empty():
        return tone, False
    return apply_tone_update(tone, proposal, now)


def apply_profile_update(
    profile: UserProfile, arguments: Mapping[str, Any], now: datetime
) -> ProfileUpdateResult:
    """Merge ``save_user_profile`` arguments into a profile.

    A non-empty string argument that differs from the stored value replaces it.
    ``last_blocker`` is read as ``last_barrier`` when that one is absent or empty. When
    ``tone_tags`` is present, the tags are validated and applied as a tone update.
    ``updated_at`` becomes ``now`` only when something changed.

    Raises:
        ValueError: ``now`` is naive.
    """
    require_aware(now, "now")
    changes, fields = _merge_text_fields(profile, arguments)
    tone = profile.tone
    if "tone_tags" in arguments:
        tone, tone_changed = _update_tone(profile.tone, arguments, now)
        if tone_changed:
            fields.append(TONE_FIELD)

    if not fields:
        return ProfileUpdateResult(profile, (), _noop_text(profile))

    updated = replace(profile, **changes, tone=tone, updated_at=now)
    logger.debug("user profile updated: %s", ", ".join(fields))
    return ProfileUpdateResult(updated, tuple(fields), _success_text(fields, updated))


def intensity_poll_options(intensity: str) -> tuple[str, ...]:
    """Return the intensity poll options offered at the given intensity.

    An empty intensity counts as ``normal``.

    Raises:
        ValueError: ``intensity`` is not ``low``, ``normal``, ``high`` or empty.
    """
    options = _INTENSITY_POLL_OPTIONS.get(intensity or DEFAULT_INTENSITY)
    if options is None:
        raise ValueError(f"invalid intensity level: {intensity}")
    return options


def apply_intensity_reply(intensity: str, text: str) -> str | None:
    """Return the intensity after a reply to the intensity poll, or None for other text.

    The text counts as a poll reply when it contains the poll question. Its answer is
    looked up as ``A: Decrease``, then ``A: Keep current``, then ``A: Increase``. An
    answer that cannot move the value further returns ``intensity`` unchanged. A poll
    reply with none of the three answers is not an intensity reply.
    """
    if INTENSITY_POLL_QUESTION not in text:
        return None
    if f"A: {OPTION_DECREASE}" in text:
        return _DECREASED.get(intensity, intensity)
    if f"A: {OPTION_KEEP_CURRENT}" in text:
        return intensity
    if f"A: {OPTION_INCREASE}" in text:
        return _INCREASED.get(intensity, intensity)
    return None


def parse_typed_intensity(text: str) -> str | None:
    """Return ``low``, ``normal`` or ``high`` when the text is just that word.

    Case and surrounding whitespace are ignored. The caller decides whether the text
    answers an intensity question, for example right after a text fallback of the poll.
    """
    word = text.strip().lower()
    if word in INTENSITY_LEVELS:
        return word
    return None


def is_done_vote(text: str) -> bool:
    """Return whether the text contains a "Done" vote of the engagement poll."""
    return DONE_VOTE_TEXT in text


def format_poll_answer(question: str, answers: Sequence[str]) -> str:
    """Format a decoded poll vote as ``Q: <question> A: <answers>``.

    Answers are joined with ", ". With no matched answer the text is ``[responded]``.
    """
    answer_text = ", ".join(answers) if answers else UNMATCHED_POLL_ANSWER
    return f"Q: {question} A: {answer_text}"


def format_participant_background(
    name: str, gender: str, ethnicity: str, background: str
) -> str:
    """Build the ``participantBackground`` text, or "" when every value is empty.

    Each non-empty value gives one ``Label: value`` line, in the order name, gender,
    ethnicity, background. Whitespace around the whole text is trimmed.
    """
    labelled = (
        ("Name", name),
        ("Gender", gender),
        ("Ethnicity", ethnicity),
        ("Background", background),
    )
    lines = [f"{label}: {value}" for label, value in labelled if value]
    return "\n".join(lines).strip()
