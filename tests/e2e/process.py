"""Start ``promptpipe serve`` as a real subprocess and talk to it over HTTP.

The service writes JSON log lines to stderr; the readiness line carries the address
it listens on (port 0 picks a free one). Outgoing messages land in a JSON-lines file
through the console transport.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

READY_EVENT = "service_ready"
ADDRESS_RE = re.compile(r"http://127\.0\.0\.1:(\d+)")


@dataclass
class ServiceProcess:
    """A running service and what it printed."""

    process: trio.Process
    state_dir: Path
    output: Path
    logs: list[dict[str, Any]] = field(default_factory=list)
    raw_stderr: list[str] = field(default_factory=list)
    base_url: str = ""

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30)

    def messages(self) -> list[dict[str, Any]]:
        """Every outgoing item written by the console transport so far."""
        if not self.output.exists():
            return []
        lines = self.output.read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def texts(self, kind: str = "text") -> list[str]:
        return [
            item.get("body", "") for item in self.messages() if item["kind"] == kind
        ]

    async def wait_for_output(self, predicate, timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while not predicate(self.messages()):
                await trio.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 30) -> int:
        with trio.fail_after(timeout):
            return await self.process.wait()


def service_command(state_dir: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "promptpipe",
        "serve",
        "--state-dir",
        str(state_dir),
        "--transport",
        "console",
        "--console-output",
        str(output),
        "--api-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        *extra,
    ]


def service_environment(**values: str) -> dict[str, str]:
    """The test's environment without PromptPipe settings, plus ``values``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROMPTPIPE_", "DATABASE_", "OPENAI_", "API_", "GENAI_"))
    }
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(values)
    return environment


async def _read_stderr(service: ServiceProcess, ready: trio.Event) -> None:
    assert service.process.stderr is not None
    buffer = b""
    async for chunk in service.process.stderr:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode("utf-8", "replace")
            service.raw_stderr.append(text)
            try:
                record = json.loads(text)
            except ValueError:
                continue
            service.logs.append(record)
            if record.get("event") == READY_EVENT:
                match = ADDRESS_RE.search(record.get("message", ""))
                if match:
                    service.base_url = f"http://127.0.0.1:{match.group(1)}"
                    ready.set()


async def start_service(
    nursery: trio.Nursery,
    state_dir: Path,
    output: Path,
    *extra: str,
    env: dict[str, str],
    timeout: float = 60,
) -> ServiceProcess:
    """Start the service and wait until it reports readiness."""
    process = await trio.lowlevel.open_process(
        service_command(state_dir, output, *extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    service = ServiceProcess(process, state_dir, output)
    ready = trio.Event()
    nursery.start_soon(_read_stderr, service, ready)
    with trio.move_on_after(timeout):
        while not ready.is_set():
            if process.poll() is not None:
                break
            with trio.move_on_after(0.2):
                await ready.wait()
    if not ready.is_set():
        process.kill()
        await process.wait()
        raise AssertionError(
            "service did not become ready:\n" + "\n".join(service.raw_stderr[-40:])
        )
    return service
