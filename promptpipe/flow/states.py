"""Names shared by the conversation engine: states, ``state_data`` keys, job kinds.

These strings are stored in the database and must stay byte-identical so a database
written by the Go original keeps working.
"""

from __future__ import annotations

from typing import Final

CONVERSATION_ACTIVE: Final = "CONVERSATION_ACTIVE"
INTAKE: Final = "INTAKE"
FEEDBACK: Final = "FEEDBACK"
SUB_STATES: Final = (INTAKE, FEEDBACK)

# state_data keys
KEY_HISTORY: Final = "conversationHistory"
KEY_BACKGROUND: Final = "participantBackground"
KEY_PROFILE: Final = "userProfile"
KEY_LAST_HABIT_PROMPT: Final = "lastHabitPrompt"
KEY_FEEDBACK_STATE: Final = "feedbackState"
KEY_FEEDBACK_TIMER: Final = "feedbackTimerID"
KEY_FEEDBACK_FOLLOWUP_TIMER: Final = "feedbackFollowupTimerID"
KEY_SCHEDULES: Final = "scheduleRegistry"
KEY_SUB_STATE: Final = "conversationState"
KEY_TRANSITION_TIMER: Final = "stateTransitionTimerID"
KEY_LAST_PROMPT_SENT_AT: Final = "lastPromptSentAt"
KEY_AUTO_FEEDBACK_TIMER: Final = "autoFeedbackTimerID"
KEY_PROMPT_PENDING: Final = "dailyPromptPending"
KEY_REMINDER_TIMER: Final = "dailyPromptReminderTimerID"
KEY_REMINDER_SENT_AT: Final = "dailyPromptReminderSentAt"
KEY_RESPONDED_AT: Final = "dailyPromptRespondedAt"
KEY_LAST_INTENSITY_DATE: Final = "lastIntensityPromptDate"
# Set when the intensity question went out as text (a transport without polls), so a
# bare "low", "normal" or "high" reply that follows is understood.
KEY_INTENSITY_TEXT_PENDING: Final = "intensityTextPromptDate"
# Outbox id of the last intensity poll (or its text fallback). When that row fails or
# is canceled, lastIntensityPromptDate is cleared so a later prompt offers it again.
KEY_INTENSITY_POLL_ID: Final = "intensityPollOutboxID"

# feedbackState values
FEEDBACK_WAITING_INITIAL: Final = "waiting_initial"
FEEDBACK_WAITING_FOLLOWUP: Final = "waiting_followup"
FEEDBACK_FOLLOWUP_SENT: Final = "followup_sent"
FEEDBACK_COMPLETED: Final = "completed"

# Job kinds and their dedupe-key prefixes.
JOB_STATE_TRANSITION: Final = "state_transition"
JOB_FEEDBACK_TIMEOUT: Final = "feedback_timeout"
JOB_FEEDBACK_FOLLOWUP: Final = "feedback_followup"
JOB_REMINDER: Final = "daily_prompt_reminder"
JOB_AUTO_FEEDBACK: Final = "auto_feedback_enforcement"
JOB_RECURRING_PROMPT: Final = "recurring_prompt"
JOB_SCHEDULED_PROMPT: Final = "scheduled_prompt"
# The first message to a newly enrolled participant, written with the enrollment.
JOB_GREETING: Final = "enrollment_greeting"

PARTICIPANT_JOB_KINDS: Final = (
    JOB_STATE_TRANSITION,
    JOB_FEEDBACK_TIMEOUT,
    JOB_FEEDBACK_FOLLOWUP,
    JOB_REMINDER,
    JOB_AUTO_FEEDBACK,
    JOB_RECURRING_PROMPT,
    JOB_GREETING,
)


def transition_dedupe_key(participant_id: str) -> str:
    return f"state_transition:{participant_id}"


def feedback_timeout_dedupe_key(participant_id: str) -> str:
    return f"feedback_timeout:{participant_id}"


def feedback_followup_dedupe_key(participant_id: str) -> str:
    return f"feedback_followup:{participant_id}"


def reminder_dedupe_key(participant_id: str) -> str:
    return f"daily_prompt_reminder:{participant_id}"


def auto_feedback_dedupe_key(participant_id: str) -> str:
    return f"auto_feedback:{participant_id}"


def recurring_prompt_dedupe_key(participant_id: str, schedule_id: str) -> str:
    return f"recurring_prompt:{participant_id}:{schedule_id}"


def greeting_dedupe_key(participant_id: str) -> str:
    return f"enrollment_greeting:{participant_id}"


def scheduled_prompt_dedupe_key(schedule_id: str) -> str:
    return f"scheduled_prompt:{schedule_id}"
