"""Locate the numbered SQL migrations of each engine.

Migrations live in ``sql/<engine>/NNNN_<intent>.sql`` at the top of the repository and
inside the installed package as ``promptpipe/migrations_sql``. Both engines carry the
same numbers with the same intent. Each backend applies the files whose number is not
yet in ``schema_migrations``, one transaction per file, recording the number in the
same transaction, so applying them again changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

_FILE_RE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str


def _migrations_root() -> Path:
    packaged = resources.files("promptpipe") / "migrations_sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql"


def load_migrations(engine: str) -> list[Migration]:
    """Return the migrations of ``engine`` ("sqlite" or "postgres") in order.

    Raises:
        RuntimeError: the folder is missing or two files share a number.
    """
    folder = _migrations_root() / engine
    if not folder.is_dir():
        raise RuntimeError(f"migration folder {folder} not found; reinstall promptpipe")

    migrations: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        match = _FILE_RE.match(path.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in migrations:
            raise RuntimeError(f"two migrations in {folder} share number {version:04d}")
        migrations[version] = Migration(
            version, match.group(2), path.read_text("utf-8")
        )
    return [migrations[version] for version in sorted(migrations)]
