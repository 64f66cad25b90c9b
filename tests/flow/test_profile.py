"""Tests of the profile loader, save_user_profile merging, polls and background text."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from promptpipe.errors import PromptPipeError
from promptpipe.flow.profile import (
    ENGAGEMENT_POLL_OPTIONS,
    ENGAGEMENT_POLL_QUESTION,
    INTENSITY_POLL_QUESTION,
    PROFILE_TEXT_FIELDS,
    ProfileCorruptError,
    UserProfile,
    apply_intensity_reply,
    apply_profile_update,
    default_profile,
    format_participant_background,
    format_poll_answer,
    intensity_poll_options,
    is_done_vote,
    load_profile,
    parse_typed_intensity,
)
from promptpipe.flow.tone import Tone

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
CREATED = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)

MERGE_PROFILE = (
    '{"habit_domain":"exercise","prompt_anchor":"after coffee",'
    '"preferred_time":"9am","intensity":"normal"}'
)
TONE_PROFILE = json.dumps(
    {
        "habit_domain": "exercise",
        "tone": {
            "tone_scores": {"concise": 0.8},
            "tone_tags": ["concise"],
            "tone_last_updated_at": "2025-06-02T09:58:00Z",
            "tone_version": 1,
        },
    }
)


def split_result(text: str) -> tuple[str, dict[str, Any]]:
    head, _, body = text.partition("\n")
    return head, json.loads(body)


# Loading


@pytest.mark.parametrize("raw", [None, "", "   \n"])
def test_load_profile_missing_gives_default(raw: str | None) -> None:
    profile = load_profile(raw, NOW)
    assert profile == UserProfile(created_at=NOW, updated_at=NOW)
    assert profile.intensity == "normal"
    assert profile.tone == Tone()


def test_default_profile_json() -> None:
    assert default_profile(NOW).to_json() == (
        '{"habit_domain":"","motivational_frame":"","preferred_time":"",'
        '"prompt_anchor":"","additional_info":"","intensity":"normal",'
        '"created_at":"2025-06-02T10:00:00Z","updated_at":"2025-06-02T10:00:00Z",'
        '"success_count":0,"total_prompts":0,'
        '"tone":{"tone_version":1,"tone_last_updated_at":"0001-01-01T00:00:00Z"}}'
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", r"invalid JSON: Expecting property name enclosed in double "),
        ("[1, 2]", r"expected a JSON object, got list"),
        ("null", r"expected a JSON object, got NoneType"),
        ('"text"', r"expected a JSON object, got str"),
        ('{"habit_domain": 5}', r"habit_domain must be a string, got 5"),
        ('{"last_blocker": false}', r"last_blocker must be a string, got False"),
        ('{"success_count": "3"}', r"success_count must be an integer, got '3'"),
        ('{"total_prompts": 2.5}', r"total_prompts must be an integer, got 2\.5"),
        ('{"success_count": true}', r"success_count must be an integer, got True"),
        ('{"tone": "warm"}', r"tone must be an object, got 'warm'"),
        (
            '{"tone": {"tone_tags": "concise"}}',
            r"tone: tone_tags must be a list of strings, got 'concise'",
        ),
        (
            '{"created_at": "yesterday"}',
            r"created_at: invalid RFC 3339 timestamp 'yesterday': expected a form "
            r"like 2025-06-02T10:00:00Z",
        ),
    ],
)
def test_load_profile_corrupt_raises(raw: str, reason: str) -> None:
    with pytest.raises(ProfileCorruptError) as info:
        load_profile(raw, NOW)
    assert info.match(
        rf"^stored user profile is invalid \({reason}.*\) and is never "
        r"overwritten, so fix or delete the userProfile value by hand$"
    )


def test_profile_corrupt_error_fields() -> None:
    with pytest.raises(ProfileCorruptError) as info:
        load_profile("[]", NOW)
    assert isinstance(info.value, PromptPipeError)
    assert info.value.code == "profile_corrupt"
    assert info.value.reason == "expected a JSON object, got list"


def test_load_profile_legacy_last_blocker() -> None:
    profile = load_profile('{"habit_domain":"walking","last_blocker":"snow"}', NOW)
    assert profile.last_barrier == "snow"
    assert "last_blocker" not in profile.to_json()
    assert json.loads(profile.to_json())["last_barrier"] == "snow"


def test_load_profile_last_barrier_beats_legacy_key() -> None:
    profile = load_profile('{"last_barrier":"rain","last_blocker":"snow"}', NOW)
    assert profile.last_barrier == "rain"


def test_load_profile_empty_barrier_uses_legacy() -> None:
    profile = load_profile('{"last_barrier":"","last_blocker":"snow"}', NOW)
    assert profile.last_barrier == "snow"


def test_load_profile_old_json_defaults() -> None:
    profile = load_profile(MERGE_PROFILE.replace(',"intensity":"normal"', ""), NOW)
    assert profile.intensity == "normal"
    assert profile.tone.version == 1
    assert profile.tone.tags == ()
    assert profile.habit_domain == "exercise"


def test_load_profile_missing_timestamps_are_unset() -> None:
    profile = load_profile(MERGE_PROFILE, NOW)
    assert profile.created_at is None
    assert profile.updated_at is None
    assert json.loads(profile.to_json())["created_at"] == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("stored", ['""', "null"])
def test_load_profile_empty_intensity_is_normal(stored: str) -> None:
    profile = load_profile('{"intensity":' + stored + "}", NOW)
    assert profile.intensity == "normal"


def test_load_profile_keeps_intensity() -> None:
    assert load_profile('{"intensity":"high"}', NOW).intensity == "high"


def test_load_profile_tone_version_zero_is_one() -> None:
    profile = load_profile('{"tone":{"tone_version":0}}', NOW)
    assert profile.tone.version == 1


def test_load_profile_float_counters() -> None:
    profile = load_profile('{"success_count":2.0,"total_prompts":7.0}', NOW)
    assert profile.success_count == 2
    assert type(profile.success_count) is int
    assert profile.total_prompts == 7
    assert type(profile.total_prompts) is int


def test_load_profile_missing_counters_are_zero() -> None:
    profile = load_profile('{"success_count":null}', NOW)
    assert profile.success_count == 0
    assert profile.total_prompts == 0


def test_load_profile_go_written_profile() -> None:
    raw = json.dumps(
        {
            "habit_domain": "exercise",
            "motivational_frame": "more energy",
            "preferred_time": "9am",
            "prompt_anchor": "after coffee",
            "additional_info": "",
            "intensity": "low",
            "created_at": "2025-06-01T04:30:00.123456789-04:00",
            "updated_at": "0001-01-01T00:00:00Z",
            "success_count": 3,
            "total_prompts": 5,
            "tone": {
                "tone_tags": ["concise"],
                "tone_scores": {"concise": 0.83, "warm_supportive": 0.15},
                "tone_version": 1,
                "tone_last_updated_at": "2025-06-02T10:02:00Z",
                "tone_update_source": "implicit",
            },
            "unknown_key": "ignored",
        }
    )
    profile = load_profile(raw, NOW)
    assert profile.created_at == datetime(2025, 6, 1, 8, 30, 0, 123456, tzinfo=UTC)
    assert profile.updated_at is None
    assert profile.intensity == "low"
    assert profile.success_count == 3
    assert profile.tone.scores == {"concise": 0.83, "warm_supportive": 0.15}
    assert profile.tone.update_source == "implicit"


def test_profile_to_json_key_order() -> None:
    profile = UserProfile(
        habit_domain="exercise",
        motivational_frame="energy",
        preferred_time="9am",
        prompt_anchor="after coffee",
        additional_info="knee injury",
        intensity="high",
        created_at=CREATED,
        updated_at=NOW,
        last_successful_prompt="Do 5 squats",
        last_barrier="rain",
        last_tweak="indoors",
        last_motivator="friend",
        success_count=4,
        total_prompts=6,
        tone=Tone(
            tags=("concise",),
            scores={"concise": 0.83},
            last_updated_at=NOW,
            update_source="explicit",
        ),
    )
    assert profile.to_json() == (
        '{"habit_domain":"exercise","motivational_frame":"energy",'
        '"preferred_time":"9am","prompt_anchor":"after coffee",'
        '"additional_info":"knee injury","intensity":"high",'
        '"created_at":"2025-06-01T08:30:00Z","updated_at":"2025-06-02T10:00:00Z",'
        '"last_successful_prompt":"Do 5 squats","last_barrier":"rain",'
        '"last_tweak":"indoors","last_motivator":"friend",'
        '"success_count":4,"total_prompts":6,'
        '"tone":{"tone_tags":["concise"],"tone_scores":{"concise":0.83},'
        '"tone_version":1,"tone_last_updated_at":"2025-06-02T10:00:00Z",'
        '"tone_update_source":"explicit"}}'
    )


def test_profile_to_json_omits_empty_last_fields() -> None:
    data = json.loads(UserProfile(last_tweak="walk inside").to_json())
    assert data["last_tweak"] == "walk inside"
    assert "last_successful_prompt" not in data
    assert "last_barrier" not in data
    assert "last_motivator" not in data


def test_profile_to_json_keeps_non_ascii() -> None:
    assert (
        '"habit_domain":"café walks 🚶"'
        in UserProfile(habit_domain="café walks 🚶").to_json()
    )


def test_profile_round_trip() -> None:
    profile = UserProfile(
        habit_domain="reading",
        created_at=CREATED,
        updated_at=NOW + timedelta(microseconds=250),
        last_barrier="tired",
        success_count=1,
        tone=Tone(tags=("formal",), scores={"formal": 1.0}, last_updated_at=NOW),
    )
    assert load_profile(profile.to_json(), NOW) == profile


def test_load_profile_naive_now_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"^invalid now .*: expected a timezone-aware datetime "
    ):
        load_profile(None, datetime(2025, 6, 2, 10, 0))


# save_user_profile merging


def test_profile_update_same_values_is_noop() -> None:
    profile = load_profile(MERGE_PROFILE, NOW)
    result = apply_profile_update(
        profile, {"prompt_anchor": "after coffee", "preferred_time": "9am"}, NOW
    )
    assert not result.changed
    assert result.updated_fields == ()
    assert result.profile is profile


def test_profile_update_noop_result_text() -> None:
    profile = load_profile(MERGE_PROFILE, NOW)
    result = apply_profile_update(profile, {"prompt_anchor": "after coffee"}, NOW)
    head, body = split_result(result.tool_result)
    assert head.startswith("NOOP:")
    assert list(body) == ["status", "message", "profile_snapshot"]
    assert body["status"] == "noop"
    assert body["message"]
    assert body["profile_snapshot"] == profile.to_dict()


def test_profile_update_merge_rules() -> None:
    profile = load_profile(MERGE_PROFILE, NOW)
    later = NOW + timedelta(minutes=1)
    result = apply_profile_update(
        profile,
        {
            "habit_domain": "",
            "last_blocker": "rain",
            "prompt_anchor": "after coffee",
            "preferred_time": "8am",
        },
        later,
    )
    assert result.updated_fields == ("preferred_time", "last_barrier")
    assert result.profile.habit_domain == "exercise"
    assert result.profile.preferred_time == "8am"
    assert result.profile.last_barrier == "rain"
    assert result.profile.updated_at == later
    assert "last_blocker" not in result.profile.to_json()


def test_profile_update_success_result_text() -> None:
    profile = load_profile(MERGE_PROFILE, NOW)
    result = apply_profile_update(
        profile, {"last_blocker": "rain", "preferred_time": "8am"}, NOW
    )
    head, body = split_result(result.tool_result)
    assert head.startswith("SUCCESS:")
    assert " 2 " in head
    assert head.endswith("preferred_time, last_barrier")
    assert list(body) == ["status", "updated_fields", "profile_snapshot"]
    assert body["status"] == "success"
    assert body["updated_fields"] == ["preferred_time", "last_barrier"]
    assert body["profile_snapshot"] == result.profile.to_dict()


def test_profile_update_field_order() -> None:
    profile = default_profile(CREATED)
    arguments = {name: f"new {name}" for name in reversed(PROFILE_TEXT_FIELDS)}
    result = apply_profile_update(profile, arguments, NOW)
    assert result.updated_fields == (
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
    assert result.profile.last_tweak == "new last_tweak"
    assert result.profile.created_at == CREATED


@pytest.mark.parametrize("value", ["", None, 5, 1.5, True, ["x"], {"a": "b"}])
def test_profile_update_ignores_non_text_values(value: object) -> None:
    profile = UserProfile(habit_domain="exercise", updated_at=CREATED)
    result = apply_profile_update(profile, {"habit_domain": value}, NOW)
    assert not result.changed
    assert result.profile.habit_domain == "exercise"
    assert result.profile.updated_at == CREATED


def test_profile_update_ignores_unknown_keys() -> None:
    profile = UserProfile(updated_at=CREATED)
    result = apply_profile_update(
        profile,
        {"intensity": "high", "success_count": "9", "tone_confidence": 0.9},
        NOW,
    )
    assert not result.changed
    assert result.profile.intensity == "normal"


def test_profile_update_barrier_beats_legacy_key() -> None:
    profile = UserProfile()
    result = apply_profile_update(
        profile, {"last_barrier": "rain", "last_blocker": "snow"}, NOW
    )
    assert result.profile.last_barrier == "rain"
    assert result.updated_fields == ("last_barrier",)


def test_profile_update_empty_barrier_uses_legacy() -> None:
    result = apply_profile_update(
        UserProfile(), {"last_barrier": "", "last_blocker": "snow"}, NOW
    )
    assert result.profile.last_barrier == "snow"


def test_profile_update_naive_now_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"^invalid now .*: expected a timezone-aware datetime "
    ):
        apply_profile_update(UserProfile(), {}, datetime(2025, 6, 2, 10, 0))


# save_user_profile tone handling


def test_profile_update_tone_rate_limited_is_noop() -> None:
    profile = load_profile(TONE_PROFILE, NOW)
    result = apply_profile_update(
        profile,
        {
            "tone_tags": ["concise", "warm_supportive"],
            "tone_update_source": "implicit",
            "tone_confidence": 0.9,
        },
        datetime(2025, 6, 2, 10, 0, tzinfo=UTC),
    )
    assert not result.changed
    assert result.tool_result.startswith("NOOP:")
    assert result.profile.tone == profile.tone


def test_profile_update_tone_three_steps() -> None:
    profile = load_profile(TONE_PROFILE, NOW)
    arguments = {
        "tone_tags": ["concise", "warm_supportive"],
        "tone_update_source": "implicit",
        "tone_confidence": 0.9,
    }
    first = apply_profile_update(
        profile, arguments, datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    )
    assert not first.changed

    second_at = datetime(2025, 6, 2, 10, 2, tzinfo=UTC)
    second = apply_profile_update(first.profile, arguments, second_at)
    tone = second.profile.tone
    assert second.updated_fields == ("tone",)
    assert second.tool_result.startswith("SUCCESS:")
    assert tone.scores == {"concise": 0.83, "warm_supportive": 0.15}
    assert tone.tags == ("concise",)
    assert tone.last_updated_at == second_at
    assert tone.update_source == "implicit"
    assert second.profile.updated_at == second_at
    stored = json.loads(second.profile.to_json())["tone"]
    assert stored["tone_last_updated_at"] == "2025-06-02T10:02:00Z"

    third_at = datetime(2025, 6, 2, 10, 2, 30, tzinfo=UTC)
    third = apply_profile_update(
        second.profile,
        {
            "tone_tags": ["Warm_Supportive", "made_up"],
            "tone_update_source": "explicit",
        },
        third_at,
    )
    tone = third.profile.tone
    assert third.updated_fields == ("tone",)
    assert tone.scores == {"concise": 0.83, "warm_supportive": 1.0}
    assert tone.tags == ("concise", "warm_supportive")
    assert tone.update_source == "explicit"
    assert tone.last_updated_at == third_at
    assert "made_up" not in third.profile.to_json()


def test_profile_update_tone_listed_after_fields() -> None:
    result = apply_profile_update(
        UserProfile(),
        {
            "tone_tags": ["formal"],
            "tone_update_source": "explicit",
            "last_tweak": "shorter",
            "habit_domain": "sleep",
        },
        NOW,
    )
    assert result.updated_fields == ("habit_domain", "last_tweak", "tone")
    _, body = split_result(result.tool_result)
    assert body["updated_fields"] == ["habit_domain", "last_tweak", "tone"]
    assert body["profile_snapshot"]["tone"]["tone_tags"] == ["formal"]


@pytest.mark.parametrize("tags", ["formal", None, 3, {"formal": 1}])
def test_profile_update_tone_tags_not_a_list(tags: object) -> None:
    result = apply_profile_update(
        UserProfile(), {"tone_tags": tags, "tone_update_source": "explicit"}, NOW
    )
    assert not result.changed


def test_profile_update_tone_tags_skip_non_strings() -> None:
    result = apply_profile_update(
        UserProfile(),
        {"tone_tags": [1, "casual", None], "tone_update_source": "explicit"},
        NOW,
    )
    assert result.profile.tone.tags == ("casual",)


def test_profile_update_tone_source_only_exact_explicit() -> None:
    result = apply_profile_update(
        UserProfile(), {"tone_tags": ["casual"], "tone_update_source": "Explicit"}, NOW
    )
    assert result.profile.tone.update_source == "implicit"
    assert result.profile.tone.scores == {"casual": 0.15}


def test_profile_update_tone_only_whitelisted_is_noop() -> None:
    result = apply_profile_update(
        UserProfile(), {"tone_tags": ["made_up"], "tone_update_source": "explicit"}, NOW
    )
    assert not result.changed
    assert result.tool_result.startswith("NOOP:")


# Intensity


@pytest.mark.parametrize(
    ("intensity", "options"),
    [
        ("low", ("Keep current", "Increase")),
        ("normal", ("Decrease", "Keep current", "Increase")),
        ("high", ("Decrease", "Keep current")),
        ("", ("Decrease", "Keep current", "Increase")),
    ],
)
def test_intensity_poll_options(intensity: str, options: tuple[str, ...]) -> None:
    assert intensity_poll_options(intensity) == options


@pytest.mark.parametrize("intensity", ["extreme", "Low", "medium"])
def test_intensity_poll_options_invalid(intensity: str) -> None:
    with pytest.raises(ValueError, match=rf"^invalid intensity level: {intensity}$"):
        intensity_poll_options(intensity)


def test_intensity_poll_question() -> None:
    assert INTENSITY_POLL_QUESTION == "How's the intensity?"


@pytest.mark.parametrize(
    ("current", "answer", "expected"),
    [
        ("low", "Decrease", "low"),
        ("low", "Keep current", "low"),
        ("low", "Increase", "normal"),
        ("normal", "Decrease", "low"),
        ("normal", "Keep current", "normal"),
        ("normal", "Increase", "high"),
        ("high", "Decrease", "normal"),
        ("high", "Keep current", "high"),
        ("high", "Increase", "high"),
    ],
)
def test_apply_intensity_reply_table(current: str, answer: str, expected: str) -> None:
    text = format_poll_answer(INTENSITY_POLL_QUESTION, [answer])
    assert apply_intensity_reply(current, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Q: Did you do it? A: Done",
        "Decrease please",
        "A: Increase",
        "Q: How's the intensity? A: [responded]",
        "",
    ],
)
def test_apply_intensity_reply_other_text(text: str) -> None:
    assert apply_intensity_reply("normal", text) is None


def test_apply_intensity_reply_decrease_checked_first() -> None:
    text = "Q: How's the intensity? A: Increase, A: Decrease"
    assert apply_intensity_reply("normal", text) == "low"


def test_apply_intensity_reply_keep_before_increase() -> None:
    text = "Q: How's the intensity? A: Increase A: Keep current"
    assert apply_intensity_reply("normal", text) == "normal"


def test_apply_intensity_reply_inside_longer_text() -> None:
    text = "note Q: How's the intensity? A: Increase thanks"
    assert apply_intensity_reply("low", text) == "normal"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("low", "low"),
        (" Low ", "low"),
        ("NORMAL", "normal"),
        ("high\n", "high"),
    ],
)
def test_parse_typed_intensity_accepts_levels(text: str, expected: str) -> None:
    assert parse_typed_intensity(text) == expected


@pytest.mark.parametrize("text", ["", "lower", "low please", "medium", "very high"])
def test_parse_typed_intensity_rejects_other_text(text: str) -> None:
    assert parse_typed_intensity(text) is None


# Engagement poll


def test_engagement_poll_constants() -> None:
    assert ENGAGEMENT_POLL_QUESTION == "Did you do it?"
    assert ENGAGEMENT_POLL_OPTIONS == ("Done", "Next time")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Q: Did you do it? A: Done", True),
        ("before Q: Did you do it? A: Done after", True),
        ("Q: Did you do it? A: Next time", False),
        ("Q: Did you do it? A: [responded]", False),
        ("q: did you do it? a: done", False),
        ("Done", False),
    ],
)
def test_is_done_vote(text: str, expected: bool) -> None:
    assert is_done_vote(text) is expected


def test_done_vote_increments_success_count() -> None:
    profile = load_profile('{"success_count":4,"total_prompts":6}', NOW)
    for text in ("Q: Did you do it? A: Done", "Q: Did you do it? A: Next time"):
        if is_done_vote(text):
            profile = replace(profile, success_count=profile.success_count + 1)
    assert profile.success_count == 5
    assert profile.total_prompts == 6


def test_format_poll_answer_single() -> None:
    answer = format_poll_answer(ENGAGEMENT_POLL_QUESTION, ["Done"])
    assert answer == "Q: Did you do it? A: Done"


def test_format_poll_answer_several() -> None:
    answer = format_poll_answer("Pick any", ["Tea", "Coffee"])
    assert answer == "Q: Pick any A: Tea, Coffee"


def test_format_poll_answer_unmatched() -> None:
    answer = format_poll_answer(ENGAGEMENT_POLL_QUESTION, [])
    assert answer == "Q: Did you do it? A: [responded]"


def test_format_poll_answer_intensity() -> None:
    answer = format_poll_answer(INTENSITY_POLL_QUESTION, ("Increase",))
    assert answer == "Q: How's the intensity? A: Increase"


# Participant background


def test_background_all_values() -> None:
    text = format_participant_background("Ana", "female", "Latina", "nurse")
    assert text == "Name: Ana\nGender: female\nEthnicity: Latina\nBackground: nurse"


def test_background_skips_empty_values() -> None:
    text = format_participant_background("", "male", "", "student")
    assert text == "Gender: male\nBackground: student"


def test_background_all_empty() -> None:
    assert format_participant_background("", "", "", "") == ""


def test_background_trims_outer_whitespace() -> None:
    text = format_participant_background("Ana", "", "", "runs daily \n")
    assert text == "Name: Ana\nBackground: runs daily"
