"""Custom prompt generators that installed packages declare as entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promptpipe.llm.openai_chat import UnconfiguredChatModel
from promptpipe.messaging.generators import (
    GeneratorPluginError,
    GeneratorRegistry,
    register_installed_generators,
)
from promptpipe.messaging.prompt import Prompt

PLUGIN_MODULE = """
async def generate(prompt):
    return f"Hello {prompt.to}, state {prompt.state}"

not_a_function = 42
"""


def install_plugin(
    site: Path, monkeypatch: pytest.MonkeyPatch, entry_points: str, module: str
) -> None:
    """Install a distribution with ``entry_points`` into ``site`` and put it first
    on ``sys.path``, the way pip lays out an installed package."""
    name = f"study_plugin_{site.name}"
    dist_info = site / f"{name}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(entry_points), encoding="utf-8"
    )
    (site / f"{name}_prompts.py").write_text(module, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))


def registry() -> GeneratorRegistry:
    return GeneratorRegistry(UnconfiguredChatModel("fake-model"))


async def test_installed_custom_generator_registered(tmp_path, monkeypatch) -> None:
    module = f"study_plugin_{tmp_path.name}_prompts"
    install_plugin(
        tmp_path,
        monkeypatch,
        f"[promptpipe.generators]\ncustom = {module}:generate\n",
        PLUGIN_MODULE,
    )
    generators = registry()

    registered = register_installed_generators(generators)
    text = await generators.generate(
        Prompt(to="15550102000", type="custom", state="WEEK_1")
    )

    assert registered == ["custom"]
    assert text == "Hello 15550102000, state WEEK_1"


def test_no_installed_generators(tmp_path, monkeypatch) -> None:
    generators = registry()

    assert register_installed_generators(generators) == []
    assert not generators.has("custom")


@pytest.mark.parametrize(
    ("entry_point", "problem"),
    [
        ("static = {module}:generate", "names the type 'static'; only custom"),
        ("custom = {module}_missing:generate", "ModuleNotFoundError"),
        ("custom = {module}:not_a_function", "is not callable"),
    ],
)
def test_bad_installed_generator_rejected(
    tmp_path, monkeypatch, entry_point: str, problem: str
) -> None:
    module = f"study_plugin_{tmp_path.name}_prompts"
    line = entry_point.format(module=module)
    install_plugin(
        tmp_path, monkeypatch, f"[promptpipe.generators]\n{line}\n", PLUGIN_MODULE
    )

    with pytest.raises(GeneratorPluginError, match=problem) as info:
        register_installed_generators(registry())

    assert line in str(info.value)
