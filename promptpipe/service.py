"""``promptpipe serve``: one process, one trio root nursery, ordered start and stop.

Start order: state-directory lock, store (migrations applied), transport, LLM client,
then the application (transport events, actor system with every participant and
queued job restored, outbox sender, redelivery of unprocessed messages, inbound path)
and finally the HTTP server. The lock is taken before trio starts. One log line
reports readiness with the address.

Stop: the first SIGINT or SIGTERM starts a graceful shutdown. HTTP stops accepting
(in-flight requests get five seconds), the inbox stops, then actors finish the
message in hand and the outbox drains, together within ``SHUTDOWN_TIMEOUT``; the
store closes and the lock is released. A second signal exits at once.
Exit status: 0 after a clean shutdown, 1 when start-up fails (with one clear line).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import trio

from actors import SystemClock
from promptpipe.api import check_bind_security, create_api, serve_api
from promptpipe.app import Application, AppOptions, create_application
from promptpipe.config import Settings
from promptpipe.errors import ConfigError, PromptPipeError
from promptpipe.flow.context import FlowSettings
from promptpipe.flow.prompts import SystemPrompts, load_system_prompts
from promptpipe.llm.base import ChatModel
from promptpipe.lock import take_state_lock
from promptpipe.messaging.generators import register_installed_generators
from promptpipe.messaging.pacing import CONSOLE_PACING, WHATSAPP_PACING, PacingPolicy
from promptpipe.metrics import InstrumentedChatModel, Metrics
from promptpipe.scheduling.cron import parse_default_cron
from promptpipe.scheduling.schedule import Schedule, ScheduleError
from promptpipe.store import open_store
from promptpipe.store.base import Store
from promptpipe.store.dsn import detect_engine, redact_dsn
from promptpipe.transport.base import Transport

logger = logging.getLogger(__name__)


class ServiceStartError(PromptPipeError):
    """The service could not start; the message names the setting to fix."""

    code = "start_failed"


# Collect young objects less often: at 100,000 resident actors the default
# thresholds spent seconds in full collections (see docs/benchmarks.md).
GC_THRESHOLDS: Final = (50_000, 20, 100)


def default_schedule(settings: Settings) -> Schedule | None:
    """Parse DEFAULT_SCHEDULE; an invalid value is a warning and no default."""
    if not settings.default_schedule:
        return None
    try:
        return parse_default_cron(settings.default_schedule)
    except ScheduleError as exc:
        logger.warning(
            "DEFAULT_SCHEDULE ignored: %s",
            exc,
            extra={"event": "default_schedule_invalid"},
        )
        return None


def pacing_policy(settings: Settings) -> PacingPolicy:
    base = WHATSAPP_PACING if settings.transport == "whatsapp" else CONSOLE_PACING
    rate = settings.outbox_rate_per_minute
    burst = settings.outbox_burst
    interval = settings.outbox_recipient_interval
    return PacingPolicy(
        rate_per_minute=rate if rate is not None else base.rate_per_minute,
        burst=burst if burst is not None else base.burst,
        recipient_interval=(
            interval.total_seconds()
            if interval is not None
            else base.recipient_interval
        ),
    )


def flow_settings(settings: Settings) -> FlowSettings:
    return FlowSettings(
        prep_minutes=settings.scheduler_prep_time_minutes,
        auto_feedback_enabled=settings.auto_feedback_after_prompt_enabled,
        history_limit=settings.chat_history_limit,
        debug=settings.debug,
        feedback_timers_enabled=settings.feedback_timers_enabled,
        feedback_initial_timeout=settings.feedback_initial_timeout,
        feedback_followup_delay=settings.feedback_followup_delay,
        reminder_delay=settings.daily_prompt_reminder_delay,
        auto_feedback_delay=settings.auto_feedback_delay,
        # A prompt sent less than this before the switch is a newer prompt that
        # restarts the wait: 4 min 30 s of the default 5 minutes, and the same
        # share of a configured delay.
        auto_feedback_newer_prompt_window=settings.auto_feedback_delay * 0.9,
    )


def system_prompts(settings: Settings) -> SystemPrompts:
    """Load the configured system prompt files, or the packaged texts."""
    return load_system_prompts(
        intake=settings.intake_bot_prompt_file,
        feedback=settings.feedback_tracker_prompt_file,
        generator=settings.prompt_generator_prompt_file,
    )


def build_llm(settings: Settings) -> ChatModel:
    from promptpipe.llm.debuglog import DebugLoggingChatModel
    from promptpipe.llm.openai_chat import build_chat_model

    model: ChatModel = build_chat_model(
        api_key=settings.openai_api_key,
        model=settings.genai_model,
        temperature=settings.genai_temperature,
        base_url=settings.openai_base_url or None,
        timeout=settings.genai_timeout.total_seconds(),
        max_retries=settings.genai_max_retries,
    )
    if settings.debug:
        model = DebugLoggingChatModel(model, settings.state_dir / "debug")
    return model


@asynccontextmanager
async def open_transport(settings: Settings) -> AsyncIterator[Transport]:
    """Open the configured transport.

    WhatsApp runs the login flow first when no device is linked yet.
    """
    if settings.transport == "console":
        from promptpipe.transport.console import ConsoleTransport

        if settings.console_output != "-":
            await trio.to_thread.run_sync(_check_writable, settings.console_output)
        yield ConsoleTransport(settings.console_output)
        return

    from promptpipe.transport.whatsapp import WhatsAppTransport, has_logged_in_device
    from promptpipe.transport.whatsapp_login import login

    linked = await trio.to_thread.run_sync(
        has_logged_in_device, settings.whatsapp_db_dsn
    )
    if not linked:
        logger.info(
            "no WhatsApp device linked; starting the login flow",
            extra={"event": "whatsapp_login_required"},
        )
        await login(settings)
    transport = WhatsAppTransport(settings.whatsapp_db_dsn)
    try:
        yield transport
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await transport.aclose()


def _check_writable(path: str) -> None:
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ServiceStartError(
            f"cannot write the console output file {path}: {exc.strerror or exc}; "
            "fix CONSOLE_OUTPUT (--console-output) or use - for standard output"
        ) from exc


def check_prompt_files(settings: Settings) -> None:
    """Fail when a configured system prompt file cannot be read."""
    configured = (
        ("INTAKE_BOT_PROMPT_FILE", settings.intake_bot_prompt_file),
        ("FEEDBACK_TRACKER_PROMPT_FILE", settings.feedback_tracker_prompt_file),
        ("PROMPT_GENERATOR_PROMPT_FILE", settings.prompt_generator_prompt_file),
    )
    for name, path in configured:
        if path is None:
            continue
        try:
            path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ServiceStartError(
                f"cannot read {name}={path}: {reason or exc}; fix the path or unset "
                "it to use the packaged prompt"
            ) from exc


@asynccontextmanager
async def asyncio_bridge(engine: str) -> AsyncIterator[None]:
    """Open the trio-asyncio loop that asyncpg needs, only for PostgreSQL."""
    if engine != "postgres":
        yield
        return
    import trio_asyncio

    async with trio_asyncio.open_loop():
        yield


async def _serve(settings: Settings) -> None:
    check_bind_security(settings.api_host, settings.api_token)
    check_prompt_files(settings)
    engine = detect_engine(settings.app_db_dsn)
    shutdown = trio.Event()

    async with trio.open_nursery() as root:
        root.start_soon(_watch_signals, shutdown)
        async with asyncio_bridge(engine), open_store(settings.app_db_dsn) as store:
            logger.info(
                "store opened: %s %s",
                engine,
                redact_dsn(settings.app_db_dsn),
                extra={"event": "store_opened"},
            )
            async with open_transport(settings) as transport:
                metrics = Metrics()
                llm = build_llm(settings)
                try:
                    app = _build_app(settings, store, transport, llm, metrics)
                    register_installed_generators(app.generators)
                    async with app.running():
                        gc.freeze()
                        await _serve_http(app, settings, metrics, shutdown)
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        await _close_llm(llm)
        root.cancel_scope.cancel()


def _build_app(
    settings: Settings,
    store: Store,
    transport: Transport,
    llm: ChatModel,
    metrics: Metrics,
) -> Application:
    return create_application(
        store=store,
        transport=transport,
        llm=InstrumentedChatModel(llm, metrics),
        clock=SystemClock(),
        options=AppOptions(
            auto_enroll=settings.auto_enroll_new_users,
            default_schedule=default_schedule(settings),
            job_lease=settings.job_lease_timeout,
            stop_grace=settings.shutdown_timeout.total_seconds(),
        ),
        flow_settings=flow_settings(settings),
        prompts=system_prompts(settings),
        pacing=pacing_policy(settings),
        outbox_max_attempts=settings.outbox_max_attempts,
    )


async def _close_llm(llm: ChatModel) -> None:
    close = getattr(llm, "aclose", None)
    if close is not None:
        await close()


async def _serve_http(
    app: Application, settings: Settings, metrics: Metrics, shutdown: trio.Event
) -> None:
    quart_app = create_api(
        app,
        token=settings.api_token,
        max_body_bytes=settings.api_max_body_bytes,
        console_enabled=settings.transport == "console",
        metrics=metrics,
    )
    async with trio.open_nursery() as nursery:
        try:
            binds = await nursery.start(
                partial(
                    serve_api,
                    quart_app,
                    settings.api_host,
                    settings.api_port,
                    shutdown_trigger=shutdown.wait,
                )
            )
        except* OSError as group:
            error = _first_leaf(group)
            reason = getattr(error, "strerror", None) or error
            raise ServiceStartError(
                f"cannot listen on {settings.api_addr}: {reason}; choose another "
                "API_ADDR (--api-addr)"
            ) from None
        logger.info(
            "promptpipe ready: listening on %s (store %s, transport %s)",
            ", ".join(binds),
            app.store.engine,
            app.transport.name,
            extra={"event": "service_ready"},
        )
        await shutdown.wait()
        logger.info("shutting down", extra={"event": "service_stopping"})


async def _watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                logger.info(
                    "received %s; stopping gracefully (send it again to force)",
                    signal.Signals(signum).name,
                    extra={"event": "signal_received"},
                )
                shutdown.set()
                continue
            # A forced stop must not wait for the shielded clean-up of the graceful
            # one. Nothing is lost: every acknowledged message and timer is in the
            # database, and the kernel releases the lock with the process.
            logger.warning(
                "second signal; exiting now", extra={"event": "forced_shutdown"}
            )
            logging.shutdown()
            os._exit(128 + signum)


def find_app_error(exc: BaseException) -> PromptPipeError | None:
    """Return the first ``PromptPipeError`` in ``exc`` or its nested groups.

    trio nurseries and trio-asyncio wrap a start-up failure in exception groups.
    """
    if isinstance(exc, PromptPipeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_app_error(inner)
            if found is not None:
                return found
    return None


def _first_leaf(error: BaseException) -> BaseException:
    """Return the first exception that is not a group, looking into nested groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def run_service(settings: Settings) -> int:
    """Run the service until a signal stops it; return the exit status."""
    gc.set_threshold(*GC_THRESHOLDS)
    if settings.env_file is not None:
        logger.info(
            "loaded settings from %s", settings.env_file, extra={"event": "env_loaded"}
        )
    lock = take_state_lock(settings.state_dir)
    if lock is None:
        return 1

    try:
        trio.run(_serve, settings)
    except BaseException as exc:
        error = find_app_error(exc)
        if error is None:
            raise
        print(f"promptpipe: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    finally:
        lock.release()
    logger.info("promptpipe stopped", extra={"event": "service_stopped"})
    return 0
