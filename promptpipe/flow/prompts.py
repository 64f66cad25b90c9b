"""System prompt texts of the conversation modules.

The texts ship with the package (``flow/system_prompts/*.txt``). Each can be replaced
by a file named in the configuration. A file that cannot be read only logs a warning,
and the packaged text is used instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

GENERATOR_FALLBACK = (
    "You are a warm micro-coach who writes short, personal one-minute habit "
    "suggestions."
)


@dataclass(frozen=True)
class SystemPrompts:
    """The three system prompts, trimmed."""

    intake: str
    feedback: str
    generator: str


def _packaged(name: str) -> str:
    return (resources.files("promptpipe.flow") / "system_prompts" / name).read_text(
        "utf-8"
    )


def _read(path: Path | None, packaged_name: str, option: str) -> str:
    if path is not None:
        try:
            return path.read_text("utf-8").strip()
        except OSError as exc:
            logger.warning(
                "cannot read %s=%s (%s); using the packaged prompt",
                option,
                path,
                exc.strerror or exc,
                extra={"event": "prompt_file_unreadable"},
            )
    return _packaged(packaged_name).strip()


def load_system_prompts(
    intake: Path | None = None,
    feedback: Path | None = None,
    generator: Path | None = None,
) -> SystemPrompts:
    """Load the prompts, preferring the given files over the packaged texts."""
    return SystemPrompts(
        intake=_read(intake, "intake_bot_system.txt", "INTAKE_BOT_PROMPT_FILE"),
        feedback=_read(
            feedback, "feedback_tracker_system.txt", "FEEDBACK_TRACKER_PROMPT_FILE"
        ),
        generator=_read(
            generator, "prompt_generator_system.txt", "PROMPT_GENERATOR_PROMPT_FILE"
        ),
    )
