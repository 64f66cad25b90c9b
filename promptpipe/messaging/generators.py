"""Prompt generators: turn a ``Prompt`` into message text, by prompt type.

The registry contains static, genai, branch and conversation. The ``custom`` type has
no built-in generator: Python code that embeds the application registers one with
``GeneratorRegistry.register``, and ``promptpipe serve`` loads one that an installed
package declares as an entry point (see ``register_installed_generators``).
"""

from __future__ import annotations

import importlib.metadata
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

ENTRY_POINT_GROUP: Final = "promptpipe.generators"
# The prompt types a request may name that have no built-in generator.
PLUGGABLE_TYPES: Final = ("custom",)


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


class GeneratorPluginError(PromptPipeError):
    """An installed prompt generator cannot be loaded."""

    code = "generator_plugin_failed"


def register_installed_generators(registry: GeneratorRegistry) -> list[str]:
    """Register the generators that installed packages declare; return their types.

    A package declares one in the ``promptpipe.generators`` entry-point group,
    named after the prompt type and pointing at an async callable that takes a
    ``Prompt`` and returns the text. In the package's ``pyproject.toml``::

        [project.entry-points."promptpipe.generators"]
        custom = "my_study.prompts:generate"

    Raises:
        GeneratorPluginError: an entry point names a type other than ``custom``,
            cannot be imported, or is not callable.
    """
    registered = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"{entry_point.name} = {entry_point.value}"
        if entry_point.name not in PLUGGABLE_TYPES:
            raise GeneratorPluginError(
                f"prompt generator entry point {where!r} names the type "
                f"{entry_point.name!r}; only {', '.join(PLUGGABLE_TYPES)} can be "
                "supplied by a package"
            )
        try:
            generator = entry_point.load()
        except Exception as exc:
            raise GeneratorPluginError(
                f"cannot load prompt generator entry point {where!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not callable(generator):
            raise GeneratorPluginError(
                f"prompt generator entry point {where!r} is not callable"
            )
        registry.register(entry_point.name, generator)
        registered.append(entry_point.name)
        logger.info(
            "prompt generator %s registered from %s",
            entry_point.name,
            entry_point.value,
            extra={"event": "generator_registered", "prompt_type": entry_point.name},
        )
    return registered
