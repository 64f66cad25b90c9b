"""What the service image relies on: time zones from the tzdata package alone."""

from __future__ import annotations

import os
import subprocess
import sys

# Prints each zone's UTC offset on 2027-01-15 and 2027-07-15, resolved through the
# schedule code, in a process whose zoneinfo search path is empty.
PROBE = """
from datetime import datetime
import zoneinfo
from promptpipe.scheduling.schedule import load_timezone
assert zoneinfo.TZPATH == (), zoneinfo.TZPATH
for name in ("America/Toronto", "Europe/London", "Australia/Lord_Howe"):
    zone = load_timezone(name)
    winter = datetime(2027, 1, 15, 12, tzinfo=zone).utcoffset()
    summer = datetime(2027, 7, 15, 12, tzinfo=zone).utcoffset()
    print(name, winter.total_seconds() / 3600, summer.total_seconds() / 3600)
"""


def test_zones_load_without_system_database() -> None:
    environment = {**os.environ, "PYTHONTZPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "America/Toronto -5.0 -4.0",
        "Europe/London 0.0 1.0",
        "Australia/Lord_Howe 11.0 10.5",
    ]
