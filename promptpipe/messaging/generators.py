"""Prompt generators: turn a ``Prompt`` into message text, by prompt type.

The registry holds static, genai, branch and conversation; Python code adds custom
generators with ``GeneratorRegistry.register``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from promptpipe.errors import PromptPipeError
from promptpipe.llm.base import ChatMessage, ChatModel
from promptpipe.messaging.prompt import Prompt, format_branch_text

logger = logging.getLogger(__name__)

CONVERSATION_GREETING: Final = (
    "Hi! I'm ready to chat whenever you are. Send me a message to start."
)
ACTIVE_STATES: Final = ("", "CONVERSATION_ACTIVE")

Generator = Callable[[Prompt], Awaitable[str]]


class GenerationError(PromptPipeError):
    """A generator could not produce the message text."""

    code = "generation_failed"


class GeneratorRegistry:
    """Maps a prompt type to the generator that writes its text."""

    def __init__(self, llm: ChatModel) -> None:
        self._llm = llm
        self._generators: dict[str, Generator] = {
            "static": self._static,
            "genai": self._genai,
            "branch": self._branch,
            "conversation": self._conversation,
        }

    def register(self, prompt_type: str, generator: Generator) -> None:
        """Add or replace the generator of ``prompt_type`` (for example "custom")."""
        self._generators[prompt_type] = generator

    def has(self, prompt_type: str) -> bool:
        return prompt_type in self._generators

    async def generate(self, prompt: Prompt) -> str:
        """Return the text for ``prompt``.

        Raises:
            GenerationError: no generator for the type, or the generator failed.
        """
        generator = self._generators.get(prompt.type)
        if generator is None:
            raise GenerationError(
                f"no generator registered for prompt type {prompt.type}"
            )
        try:
            return await generator(prompt)
        except GenerationError:
            raise
        except PromptPipeError as exc:
            raise GenerationError(str(exc)) from exc

    async def _static(self, prompt: Prompt) -> str:
        return prompt.body

    async def _genai(self, prompt: Prompt) -> str:
        completion = await self._llm.complete(
            [
                ChatMessage(role="system", content=prompt.system_prompt),
                ChatMessage(role="user", content=prompt.user_prompt),
            ]
        )
        if not completion.content.strip():
            raise GenerationError("the model returned an empty message")
        return completion.content

    async def _branch(self, prompt: Prompt) -> str:
        return format_branch_text(prompt.body, prompt.branch_options)

    async def _conversation(self, prompt: Prompt) -> str:
        if prompt.state not in ACTIVE_STATES:
            raise GenerationError(
                f"unsupported conversation flow state '{prompt.state}'"
            )
        return CONVERSATION_GREETING


def attaches_poll(prompt_type: str) -> bool:
    """Whether a prompt of this type is followed by the engagement poll."""
    return prompt_type in ("static", "genai", "custom")
