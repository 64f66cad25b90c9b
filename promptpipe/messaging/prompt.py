"""The ``Prompt`` object of ``/send`` and ``/schedule``, and its validation.

Lengths are counted in Unicode code points, so a label of 51 ``é`` characters is 51
long, not 102.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from promptpipe.errors import PromptPipeError

PROMPT_TYPES: Final = ("static", "genai", "branch", "conversation", "custom")
MAX_BODY_LENGTH: Final = 4096
MIN_BRANCH_OPTIONS: Final = 2
MAX_BRANCH_OPTIONS: Final = 10
MAX_BRANCH_LABEL_LENGTH: Final = 100
MAX_BRANCH_BODY_LENGTH: Final = 1000


class PromptValidationError(PromptPipeError, ValueError):
    """A prompt breaks one of the validation rules; the message is the API's."""

    code = "invalid_prompt"


@dataclass(frozen=True)
class BranchOption:
    """One numbered choice of a branch prompt."""

    label: str
    body: str


@dataclass(frozen=True)
class Prompt:
    """A message to generate and send; ``to`` holds canonical digits once validated."""

    to: str
    type: str = "static"
    state: str = ""
    body: str = ""
    system_prompt: str = ""
    user_prompt: str = ""
    branch_options: tuple[BranchOption, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in job payloads."""
        data: dict[str, Any] = {"to": self.to, "type": self.type}
        for name in ("state", "body", "system_prompt", "user_prompt"):
            value = getattr(self, name)
            if value:
                data[name] = value
        if self.branch_options:
            data["branch_options"] = [
                {"label": option.label, "body": option.body}
                for option in self.branch_options
            ]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prompt:
        """Rebuild a prompt stored by ``to_json``."""
        options = tuple(
            BranchOption(str(item.get("label", "")), str(item.get("body", "")))
            for item in data.get("branch_options") or ()
            if isinstance(item, dict)
        )
        return cls(
            to=str(data.get("to", "")),
            type=str(data.get("type") or "static"),
            state=str(data.get("state", "")),
            body=str(data.get("body", "")),
            system_prompt=str(data.get("system_prompt", "")),
            user_prompt=str(data.get("user_prompt", "")),
            branch_options=options,
        )


def validate_prompt(prompt: Prompt) -> None:
    """Check ``prompt`` in the documented order; the first failure is raised.

    Raises:
        PromptValidationError: with the API's exact message.
    """
    if prompt.type not in PROMPT_TYPES:
        raise PromptValidationError("invalid prompt type")
    if prompt.type == "static":
        if prompt.body == "":
            raise PromptValidationError("body is required for static prompts")
        if len(prompt.body) > MAX_BODY_LENGTH:
            raise PromptValidationError("prompt body exceeds maximum length")
    elif prompt.type == "genai":
        if prompt.system_prompt == "":
            raise PromptValidationError("system prompt is required for GenAI prompts")
        if prompt.user_prompt == "":
            raise PromptValidationError("user prompt is required for GenAI prompts")
    elif prompt.type == "branch":
        _validate_branch(prompt.branch_options)
    elif prompt.type == "conversation" and prompt.user_prompt == "":
        raise PromptValidationError("user prompt is required for GenAI prompts")


def _validate_branch(options: tuple[BranchOption, ...]) -> None:
    if not options:
        raise PromptValidationError("branch options are required for branch prompts")
    if len(options) < MIN_BRANCH_OPTIONS:
        raise PromptValidationError("insufficient branch options")
    if len(options) > MAX_BRANCH_OPTIONS:
        raise PromptValidationError("too many branch options")
    for option in options:
        if option.label == "":
            raise PromptValidationError("branch label cannot be empty")
        if len(option.label) > MAX_BRANCH_LABEL_LENGTH:
            raise PromptValidationError("branch label exceeds maximum length")
        if option.body == "":
            raise PromptValidationError("branch body cannot be empty")
        if len(option.body) > MAX_BRANCH_BODY_LENGTH:
            raise PromptValidationError("branch body exceeds maximum length")


def format_branch_text(body: str, options: tuple[BranchOption, ...]) -> str:
    """Return the numbered text of a branch prompt, exactly as participants see it."""
    if not options:
        return body
    text = body
    if text and not text.endswith("\n"):
        text += "\n"
    text += "\n"
    for number, option in enumerate(options, start=1):
        text += f"{number}. {option.label}: {option.body}\n"
    text += "\n"
    count = len(options)
    if count == 2:
        text += "(Reply with '1' or '2')"
    else:
        middle = "".join(f", '{number}'" for number in range(2, count))
        text += f"(Reply with '1'{middle}, or '{count}')"
    return text
