"""Entry point for ``python -m promptpipe``."""

from __future__ import annotations

from promptpipe.cli import main

raise SystemExit(main())
