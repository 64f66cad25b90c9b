"""The generated configuration page matches the option table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "configuration_doc", ROOT / "scripts" / "configuration_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    expected = module.render()
    actual = (ROOT / "docs" / "configuration.md").read_text("utf-8")

    assert actual == expected, "run: python scripts/configuration_doc.py"
