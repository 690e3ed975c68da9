"""Webhook intake rate: a token bucket of ``burst`` alerts refilled at ``per_minute``.

One bucket for the whole webhook, whatever the source address: the limit protects the
account and the broker session from a runaway script or a replayed alert storm, and
TradingView alone sends from four addresses. Time is passed in (the engine's clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after: int = 0  # whole seconds until a request would be admitted


class RateLimiter:
    def __init__(self, per_minute: int, burst: int) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("per_minute and burst must be > 0")
        self.per_minute = per_minute
        self.burst = burst
        self._tokens = float(burst)
        self._at: datetime | None = None

    @property
    def _rate(self) -> float:
        return self.per_minute / 60.0  # tokens per second

    def admit(self, now: datetime) -> Admission:
        """Take one token if there is one; otherwise say how long until there will be."""
        if self._at is not None:
            elapsed = max(0.0, (now - self._at).total_seconds())
            self._tokens = min(float(self.burst), self._tokens + elapsed * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Admission(True)
        wait = (1.0 - self._tokens) / self._rate
        return Admission(False, retry_after=max(1, math.ceil(wait - 1e-9)))
