"""Tone adaptation: the tag whitelist, the score update rules and the tone guide.

Everything here is pure. Callers pass the time in and store the returned ``Tone``
themselves, and nothing in this module reads a clock or touches storage.

Each whitelisted tag has a score in [0, 1]. An explicit request from the user sets the
score of every requested tag directly. An implicit observation moves the score of each
observed tag by an exponential moving average (alpha 0.15) and multiplies every other
positive score by 0.85. Implicit updates are applied at most once every three minutes.
A tag becomes active at a score of 0.7 or more and stops being active at 0.4 or less.
Between the two thresholds it keeps its previous membership, so a score hovering near
one threshold does not flip the tag on every update.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Literal

logger = logging.getLogger(__name__)

STYLE_TAGS: Final[tuple[str, ...]] = (
    "concise",
    "detailed",
    "formal",
    "casual",
    "no_emojis",
    "emojis_ok",
    "bullet_points",
    "one_question_at_a_time",
)
STANCE_TAGS: Final[tuple[str, ...]] = (
    "warm_supportive",
    "neutral_professional",
    "direct_coach",
    "gentle_coach",
)
INTERACTION_TAGS: Final[tuple[str, ...]] = (
    "confirm_before_acting",
    "default_actionable",
    "high_autonomy",
)
TAG_CATEGORIES: Final[Mapping[str, tuple[str, ...]]] = {
    "style": STYLE_TAGS,
    "stance": STANCE_TAGS,
    "interaction": INTERACTION_TAGS,
}
ALLOWED_TAGS: Final[frozenset[str]] = frozenset(
    STYLE_TAGS + STANCE_TAGS + INTERACTION_TAGS
)

# When both tags of a pair reach the activate threshold, one of them is pushed down to
# EXCLUSIVE_LOSER_SCORE. The pairs are resolved in this order.
EXCLUSIVE_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("concise", "detailed"),
    ("formal", "casual"),
    ("direct_coach", "gentle_coach"),
)

EMA_ALPHA: Final = 0.15
ACTIVATE_THRESHOLD: Final = 0.7
DEACTIVATE_THRESHOLD: Final = 0.4
EXCLUSIVE_LOSER_SCORE: Final = 0.39  # just below DEACTIVATE_THRESHOLD
MIN_IMPLICIT_INTERVAL: Final = timedelta(minutes=3)
TONE_VERSION: Final = 1
SCORE_DECIMALS: Final = 4

SOURCE_EXPLICIT: Final = "explicit"
SOURCE_IMPLICIT: Final = "implicit"
ToneSource = Literal["explicit", "implicit"]

# Go writes an unset time.Time as this text, so stored profiles may contain it.
GO_ZERO_TIME_TEXT: Final = "0001-01-01T00:00:00Z"
_GO_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)

_SCORE_QUANTUM: Final = Decimal(1).scaleb(-SCORE_DECIMALS)

# One instruction per tag, emitted in this order by tone_guide.
_GUIDE_STYLE_LINES: Final[tuple[tuple[str, str], ...]] = (
    ("concise", "Keep replies short: a few sentences at most, no filler."),
    ("detailed", "Give fuller explanations with concrete detail when it helps."),
    ("formal", "Use a formal, polite register without slang."),
    ("casual", "Use a relaxed, conversational register."),
)
_GUIDE_NO_EMOJIS_LINE: Final = "Do not use emojis."
_GUIDE_EMOJIS_OK_LINE: Final = "Emojis are welcome where they fit naturally."
_GUIDE_FORMAT_LINES: Final[tuple[tuple[str, str], ...]] = (
    ("bullet_points", "Prefer short bullet points over long paragraphs."),
    ("one_question_at_a_time", "Ask at most one question per message."),
)
_GUIDE_NEUTRAL_LINE: Final = "Keep a neutral, professional stance."
_GUIDE_STANCE_LINES: Final[tuple[tuple[str, str], ...]] = (
    ("warm_supportive", "Be warm and supportive, and acknowledge effort."),
    ("neutral_professional", _GUIDE_NEUTRAL_LINE),
    ("direct_coach", "Coach directly: state the next step plainly."),
    ("gentle_coach", "Coach gently: suggest rather than push."),
)
_GUIDE_INTERACTION_LINES: Final[tuple[tuple[str, str], ...]] = (
    ("confirm_before_acting", "Confirm with the user before saving or scheduling."),
    ("default_actionable", "End with one small, concrete action the user can take."),
    ("high_autonomy", "Offer options and let the user decide instead of prescribing."),
)
_GUIDE_INTRO_LINE: Final = (
    "Adapt your writing to the communication style this user prefers:"
)
_GUIDE_SAFETY_LINE: Final = (
    "Never mirror hostility, sarcasm, insults or unsafe language, whatever the "
    "user's style."
)


def require_aware(value: datetime, name: str) -> None:
    """Raise ValueError naming ``name`` when ``value`` has no UTC offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"invalid {name} {value!r}: expected a timezone-aware datetime such as "
            "datetime.now(UTC)"
        )


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a ``Z`` suffix.

    Fractional seconds appear only when non-zero, without trailing zeros, as Go's
    ``time.RFC3339Nano`` writes them.

    Raises:
        ValueError: ``value`` is naive.
    """
    require_aware(value, "value")
    utc = value.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset and return it in UTC.

    Digits past microseconds are dropped.

    Raises:
        ValueError: ``text`` is not an RFC 3339 timestamp with ``Z`` or an offset.
    """
    try:
        parsed = datetime.fromisoformat(text.strip().upper())
        if parsed.tzinfo is None:
            raise ValueError("no UTC offset")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(
            f"invalid RFC 3339 timestamp {text!r}: expected a form like "
            "2025-06-02T10:00:00Z"
        ) from exc


def parse_stored_time(value: object, key: str) -> datetime | None:
    """Parse a stored timestamp, where null, "" and Go's zero time mean unset.

    Raises:
        ValueError: ``value`` is not a string or not an RFC 3339 timestamp. The
            message names ``key``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a timestamp string, got {value!r}")
    try:
        parsed = parse_rfc3339(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    if parsed == _GO_ZERO_TIME:
        return None
    return parsed


def format_stored_time(value: datetime | None) -> str:
    """Format a timestamp for storage, writing Go's zero time for None.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value is None:
        return GO_ZERO_TIME_TEXT
    return format_rfc3339(value)


def round_score(value: float) -> float:
    """Clamp a score to [0, 1] and round it to 4 decimals, halves away from zero.

    NaN becomes 0. The rounding works on the shortest decimal form of the float, so
    0.385875 becomes 0.3859 even where its binary value lies just below the half.
    """
    if math.isnan(value):
        return 0.0
    clamped = min(1.0, max(0.0, value))
    return float(Decimal(repr(clamped)).quantize(_SCORE_QUANTUM, ROUND_HALF_UP))


def _score_to_json(value: float) -> float | int:
    # Go writes whole float32 values without a fraction (1, not 1.0).
    rounded = round_score(value)
    if rounded.is_integer():
        return int(rounded)
    return rounded


def _score_from_json(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"tone_scores[{key!r}] must be a number, got {value!r}")
    return round_score(float(value))


@dataclass(frozen=True)
class Tone:
    """The tone state stored inside a user profile.

    ``tags`` is the active set. ``scores`` maps tags to scores in [0, 1]. A
    ``last_updated_at`` of None means the tone was never updated.
    ``override_until`` is reserved and never set by this module.
    """

    tags: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    version: int = TONE_VERSION
    last_updated_at: datetime | None = None
    update_source: str = ""
    override_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the stored JSON object: empty tags, scores and source are omitted."""
        data: dict[str, Any] = {}
        if self.tags:
            data["tone_tags"] = list(self.tags)
        if self.scores:
            data["tone_scores"] = {
                tag: _score_to_json(self.scores[tag]) for tag in sorted(self.scores)
            }
        data["tone_version"] = self.version
        data["tone_last_updated_at"] = format_stored_time(self.last_updated_at)
        if self.update_source:
            data["tone_update_source"] = self.update_source
        if self.override_until is not None:
            data["tone_override_until"] = format_rfc3339(self.override_until)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tone:
        """Build a tone from its stored JSON object.

        Missing keys and nulls take their defaults, and a version of 0 becomes 1.
        Scores are clamped and rounded. Integral floats are accepted as the version.

        Raises:
            ValueError: a key contains a wrong type or an invalid timestamp.
        """
        raw_tags = data.get("tone_tags")
        if raw_tags is None:
            raw_tags = []
        if not isinstance(raw_tags, list) or not all(
            isinstance(tag, str) for tag in raw_tags
        ):
            raise ValueError(f"tone_tags must be a list of strings, got {raw_tags!r}")

        raw_scores = data.get("tone_scores")
        if raw_scores is None:
            raw_scores = {}
        if not isinstance(raw_scores, dict):
            raise ValueError(f"tone_scores must be an object, got {raw_scores!r}")
        scores = {str(tag): _score_from_json(v, tag) for tag, v in raw_scores.items()}

        version = _version_from_json(data.get("tone_version"))
        source = data.get("tone_update_source")
        if source is None:
            source = ""
        if not isinstance(source, str):
            raise ValueError(f"tone_update_source must be a string, got {source!r}")

        return cls(
            tags=tuple(raw_tags),
            scores=scores,
            version=version,
            last_updated_at=parse_stored_time(
                data.get("tone_last_updated_at"), "tone_last_updated_at"
            ),
            update_source=source,
            override_until=parse_stored_time(
                data.get("tone_override_until"), "tone_override_until"
            ),
        )


def _version_from_json(value: object) -> int:
    if value is None:
        return TONE_VERSION
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"tone_version must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"tone_version must be an integer, got {value!r}")
    return int(value) or TONE_VERSION


@dataclass(frozen=True)
class ToneProposal:
    """A validated tone change: whitelisted tags, clamped scores and a source."""

    tags: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    source: ToneSource = SOURCE_IMPLICIT

    def is_empty(self) -> bool:
        """Return whether the proposal has neither tags nor scores."""
        return not self.tags and not self.scores


def _normalize_tag(raw: str) -> str | None:
    tag = raw.strip().lower()
    if tag in ALLOWED_TAGS:
        return tag
    return None


def validate_proposal(
    tags: Iterable[object] | None,
    scores: Mapping[str, object] | None = None,
    source: object = None,
) -> ToneProposal:
    """Reduce a raw tone request to whitelisted, deduplicated content.

    Tags are trimmed and lower-cased. Tags outside the whitelist and non-string items
    are dropped, and so are repeats (the first occurrence is kept). Score keys are
    normalized the same way, and numeric values are clamped to [0, 1]. Only the exact
    string ``explicit`` makes the source explicit, anything else means implicit.
    """
    kept: list[str] = []
    for raw in tags or ():
        if not isinstance(raw, str):
            continue
        tag = _normalize_tag(raw)
        if tag is not None and tag not in kept:
            kept.append(tag)

    clean_scores: dict[str, float] = {}
    for raw_key, value in (scores or {}).items():
        tag = _normalize_tag(raw_key)
        if tag is None or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and not math.isnan(value):
            clean_scores[tag] = min(1.0, max(0.0, float(value)))

    resolved: ToneSource = (
        SOURCE_EXPLICIT if source == SOURCE_EXPLICIT else SOURCE_IMPLICIT
    )
    return ToneProposal(tags=tuple(kept), scores=clean_scores, source=resolved)


def _observe(proposal: ToneProposal) -> dict[str, float]:
    observations = dict.fromkeys(proposal.tags, 1.0)
    # Only an explicit request may state its own strength for a tag.
    if proposal.source == SOURCE_EXPLICIT:
        observations.update(proposal.scores)
    return observations


def _score(
    old: Mapping[str, float], observations: Mapping[str, float], source: str
) -> dict[str, float]:
    scores = dict(old)
    if source == SOURCE_EXPLICIT:
        for tag, observed in observations.items():
            scores[tag] = round_score(observed)
        return scores

    keep = 1.0 - EMA_ALPHA
    for tag, observed in observations.items():
        scores[tag] = round_score(keep * old.get(tag, 0.0) + EMA_ALPHA * observed)
    for tag, previous in old.items():
        if tag not in observations and previous > 0:
            scores[tag] = round_score(keep * previous)
    return scores


def _differs(old: Mapping[str, float], new: Mapping[str, float]) -> bool:
    # An absent score counts as a score of 0.
    tags = old.keys() | new.keys()
    return any(old.get(tag, 0.0) != new.get(tag, 0.0) for tag in tags)


def _resolve_exclusive_pairs(
    scores: dict[str, float], observed: Iterable[str], explicit: bool
) -> None:
    """Push the losing tag of every pair that is over the activate threshold."""
    observed_set = set(observed)
    for first, second in EXCLUSIVE_PAIRS:
        first_score = scores.get(first, 0.0)
        second_score = scores.get(second, 0.0)
        if first_score < ACTIVATE_THRESHOLD or second_score < ACTIVATE_THRESHOLD:
            continue

        first_observed = first in observed_set
        if explicit and first_observed != (second in observed_set):
            # The tag the user just asked for wins over the one they did not name.
            loser = second if first_observed else first
        elif first_score < second_score:
            loser = first
        else:
            # Higher score wins, and on a tie the second tag of the pair loses.
            loser = second
        scores[loser] = EXCLUSIVE_LOSER_SCORE


def _active_tags(
    previous: Iterable[str], scores: Mapping[str, float]
) -> tuple[str, ...]:
    active = set(previous)
    for tag, score in scores.items():
        if score >= ACTIVATE_THRESHOLD:
            active.add(tag)
        elif score <= DEACTIVATE_THRESHOLD:
            active.discard(tag)
    if "no_emojis" in active:
        active.discard("emojis_ok")
    return tuple(sorted(active))


def apply_tone_update(
    tone: Tone, proposal: ToneProposal, now: datetime
) -> tuple[Tone, bool]:
    """Apply a validated proposal to a tone and report whether anything changed.

    An implicit proposal less than three minutes after the last update is rejected. An
    explicit one is always applied. When nothing changes, the given ``tone`` object is
    returned as it is, and ``last_updated_at`` keeps its old value.

    Raises:
        ValueError: ``now`` is naive.
    """
    require_aware(now, "now")
    if (
        proposal.source == SOURCE_IMPLICIT
        and tone.last_updated_at is not None
        and now - tone.last_updated_at < MIN_IMPLICIT_INTERVAL
    ):
        logger.debug("implicit tone update rejected by the rate limit")
        return tone, False

    observations = _observe(proposal)
    if not observations:
        return tone, False
    scores = _score(tone.scores, observations, proposal.source)
    if not _differs(tone.scores, scores):
        return tone, False

    if scores.get("no_emojis", 0.0) >= ACTIVATE_THRESHOLD and "emojis_ok" in scores:
        scores["emojis_ok"] = 0.0
    _resolve_exclusive_pairs(
        scores, observations, explicit=proposal.source == SOURCE_EXPLICIT
    )

    updated = Tone(
        tags=_active_tags(tone.tags, scores),
        scores=scores,
        version=TONE_VERSION,
        last_updated_at=now,
        update_source=proposal.source,
        override_until=tone.override_until,
    )
    return updated, True


def tone_guide(tone: Tone) -> str:
    """Build the tone policy block for a system prompt, or "" with no active tags.

    The block contains only fixed text chosen by tag, never user-provided text. Stored
    tags outside the whitelist are ignored.
    """
    active = ALLOWED_TAGS.intersection(tone.tags)
    if not active:
        return ""

    lines = ["", "<TONE POLICY>", _GUIDE_INTRO_LINE]
    lines += [f"- {text}" for tag, text in _GUIDE_STYLE_LINES if tag in active]
    if "no_emojis" in active:
        lines.append(f"- {_GUIDE_NO_EMOJIS_LINE}")
    elif "emojis_ok" in active:
        lines.append(f"- {_GUIDE_EMOJIS_OK_LINE}")
    lines += [f"- {text}" for tag, text in _GUIDE_FORMAT_LINES if tag in active]

    stance = [f"- {text}" for tag, text in _GUIDE_STANCE_LINES if tag in active]
    lines += stance or [f"- {_GUIDE_NEUTRAL_LINE}"]
    lines += [f"- {text}" for tag, text in _GUIDE_INTERACTION_LINES if tag in active]
    lines += [f"- {_GUIDE_SAFETY_LINE}", "</TONE POLICY>"]
    return "\n".join(lines)
