"""Serve the admin API with hypercorn's trio worker inside the caller's nursery.

``serve_api`` is meant for ``nursery.start``: it reports the bound addresses once
the socket listens, so port 0 works, and it returns by itself after the shutdown
trigger fires and in-flight requests had ``GRACEFUL_TIMEOUT_SECONDS`` to finish.
Requests still running then are cancelled. Hypercorn writes no access log, so
paths, bodies and tokens of requests are never logged by the server.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)
from quart_trio import QuartTrio

from promptpipe.errors import ConfigError

logger = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_SECONDS: Final = 5.0
# A connection that sends nothing for this long is closed, even mid-request. It is
# what bounds idle HTTP/2 connections, whose keep-alive hypercorn 0.18 never ends.
# It must exceed the longest request: a participant change waits up to two 60 s
# requests to the participant's actor.
READ_TIMEOUT_SECONDS: Final = 180
_ALL_INTERFACES: Final = "0.0.0.0"


class InsecureBindError(ConfigError):
    """The API would listen on a non-loopback address without a token."""

    code = "insecure_api_bind"

    def __init__(self, host: str) -> None:
        where = "every interface" if host == "" else host
        problem = (
            f"the admin API would listen on {where} without a bearer token, so "
            "anyone who can reach it could send messages and delete participants; "
            "set API_TOKEN (--api-token) to a secret, or set API_ADDR (--api-addr) "
            "to a loopback address such as 127.0.0.1:8080"
        )
        super().__init__("API_ADDR", host, problem)


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names only this machine: 127.0.0.0/8, ::1 or localhost.

    The empty host means every interface and is not loopback. Host names other
    than ``localhost`` are not resolved, so they count as non-loopback.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_bind_security(host: str, token: str) -> None:
    """Refuse an API without a token on an address other machines can reach.

    Raises:
        InsecureBindError: ``host`` is not loopback and ``token`` is empty.
    """
    if token or is_loopback_host(host):
        return
    raise InsecureBindError(host)


def _bind_address(host: str, port: int) -> str:
    if host == "":
        host = _ALL_INTERFACES
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _with_shielded_send(app: QuartTrio) -> ASGIFramework:
    """Wrap ``app`` so that each ASGI ``send`` finishes even if its task is cancelled.

    quart-trio cancels a request's task as soon as the response body is sent. With
    hypercorn 0.18's trio worker, the last ``send`` is also where hypercorn closes a
    connection that must close (``Connection: close``) or arms its keep-alive timer,
    so the cancellation interrupted that step and left the socket open until the
    client hung up. Shielding the ``send`` lets it complete. hypercorn already
    shields its own socket writes, so this adds no new way to block.
    """

    async def shielded_app(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async def shielded_send(message: ASGISendEvent) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await app(scope, receive, shielded_send)

    return shielded_app


def _hypercorn_config(
    host: str, port: int, graceful_timeout: float, read_timeout: int
) -> Config:
    config = Config()
    config.bind = [_bind_address(host, port)]
    config.graceful_timeout = graceful_timeout
    config.read_timeout = read_timeout
    config.accesslog = None
    config.errorlog = logger
    config.include_server_header = False
    return config


async def serve_api(
    quart_app: QuartTrio,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    graceful_timeout: float = GRACEFUL_TIMEOUT_SECONDS,
    read_timeout: int = READ_TIMEOUT_SECONDS,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``quart_app`` on ``host``:``port`` until ``shutdown_trigger`` returns.

    An empty ``host`` listens on every IPv4 interface. ``task_status.started``
    receives the bound URLs, such as ``["http://127.0.0.1:41234"]``, once the
    socket listens. After the trigger, new connections are refused and requests
    in flight get ``graceful_timeout`` seconds before they are cancelled. A
    connection from which nothing arrives for ``read_timeout`` seconds is closed.

    Raises:
        OSError: the address cannot be bound.
    """
    config = _hypercorn_config(host, port, graceful_timeout, read_timeout)

    async def started(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(
            _with_shielded_send(quart_app),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        logger.info(
            "admin API listening on %s",
            ", ".join(binds),
            extra={"event": "api_listening"},
        )
        task_status.started(binds)
    logger.info("admin API stopped", extra={"event": "api_stopped"})
