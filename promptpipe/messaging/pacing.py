"""Send pacing: a global token bucket plus a minimum gap per recipient.

WhatsApp publishes no sending limits for linked-device clients such as the one
neonize wraps, so the WhatsApp defaults below are a judgement, not a measured limit.
User reports in the issue trackers of unofficial clients (whatsmeow, Baileys,
2022-2025) tie bans to bursts and to volume sent to numbers that never wrote back:
accounts were banned after a few dozen messages to new numbers even with 10-15 s
between sends, HTTP 429 responses appeared at about three messages per second, and one
rule of thumb calls more than five identical messages per minute risky. Our
recipients opted in to a study, answer its messages, and get a few personal messages
a day. The defaults keep the sending pattern within what a person tapping through
chats could produce, with no machine-like bursts even when a backlog drains:

* 12 messages per minute sustained (one every 5 s on average). A 200-participant
  study at five messages each per day averages under one message per minute, so the
  rate only shapes backlogs: 300 messages queued during an outage take 25 minutes.
* A burst of 5, so one daily prompt (text, engagement poll, intensity poll) and a
  reply to someone else go out without waiting for the global rate.
* 2 s between two messages to one person, so a prompt and its poll arrive in order
  and close together, as a person would send them.

The console transport talks to no network and is not paced.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import trio

SECONDS_PER_MINUTE: Final = 60.0


@dataclass(frozen=True)
class PacingPolicy:
    """Limits on how fast the outbox sends.

    Attributes:
        rate_per_minute: sustained messages per minute across all recipients;
            ``None`` means no global limit.
        burst: messages that may go out back to back before the rate applies.
        recipient_interval: minimum seconds between two messages to one recipient.
    """

    rate_per_minute: float | None
    burst: int
    recipient_interval: float

    def __post_init__(self) -> None:
        if self.rate_per_minute is not None and not self.rate_per_minute > 0:
            raise ValueError(
                "rate_per_minute must be positive or None, "
                f"got {self.rate_per_minute!r}"
            )
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst!r}")
        if not self.recipient_interval >= 0:
            raise ValueError(
                "recipient_interval must be zero or more seconds, "
                f"got {self.recipient_interval!r}"
            )


WHATSAPP_PACING: Final = PacingPolicy(
    rate_per_minute=12.0, burst=5, recipient_interval=2.0
)
CONSOLE_PACING: Final = PacingPolicy(
    rate_per_minute=None, burst=1, recipient_interval=0.0
)
_DEFAULT_PACING: Final = {"whatsapp": WHATSAPP_PACING, "console": CONSOLE_PACING}


def default_pacing(transport_name: str) -> PacingPolicy:
    """Return the default policy of a transport; unknown names get the WhatsApp one."""
    return _DEFAULT_PACING.get(transport_name, WHATSAPP_PACING)


class Pacer:
    """Spaces sends according to a ``PacingPolicy``.

    Time is ``trio.current_time()``, so the pacer follows trio's ``MockClock`` in
    tests. Callers are served one at a time, in the order they call ``wait_turn``.
    """

    def __init__(self, policy: PacingPolicy) -> None:
        self.policy = policy
        self._lock = trio.Lock()
        self._tokens = float(policy.burst)
        self._refilled_at: float | None = None
        # Recipient -> trio time of its last turn, oldest first. Invariant: only
        # recipients whose interval has not yet elapsed are kept, so the map contains at
        # most the recipients served in the last ``recipient_interval`` seconds.
        self._last_turn: OrderedDict[str, float] = OrderedDict()

    @property
    def tracked_recipients(self) -> int:
        """Number of recipients whose minimum interval is still running."""
        return len(self._last_turn)

    def _refill(self, now: float) -> None:
        rate = self.policy.rate_per_minute
        if rate is None:
            return
        if self._refilled_at is not None:
            earned = (now - self._refilled_at) * rate / SECONDS_PER_MINUTE
            self._tokens = min(float(self.policy.burst), self._tokens + earned)
        self._refilled_at = now

    def _forget_elapsed(self, now: float) -> None:
        interval = self.policy.recipient_interval
        while self._last_turn:
            recipient, turn_at = next(iter(self._last_turn.items()))
            if turn_at + interval > now:
                break
            del self._last_turn[recipient]

    def _earliest_turn(self, recipient: str, now: float) -> float:
        turn_at = now
        rate = self.policy.rate_per_minute
        if rate is not None and self._tokens < 1:
            turn_at += (1 - self._tokens) * SECONDS_PER_MINUTE / rate
        previous = self._last_turn.get(recipient)
        if previous is not None:
            turn_at = max(turn_at, previous + self.policy.recipient_interval)
        return turn_at

    async def wait_turn(self, recipient: str) -> None:
        """Sleep until a message to ``recipient`` may be sent, then take the turn.

        Always checkpoints. If cancelled while waiting, no turn is taken.
        """
        async with self._lock:
            now = trio.current_time()
            self._refill(now)
            self._forget_elapsed(now)
            await trio.sleep_until(self._earliest_turn(recipient, now))

            now = trio.current_time()
            self._refill(now)
            if self.policy.rate_per_minute is not None:
                self._tokens -= 1
            if self.policy.recipient_interval > 0:
                self._last_turn.pop(recipient, None)
                self._last_turn[recipient] = now
