"""What the broker client is constructed from: where the server is, who we are, and timings.

``ClientSettings`` is a frozen dataclass; the secrets (client secret, both tokens) are kept out of
its ``repr`` so that logging the settings, or an assertion showing them, leaks nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

#: ``async def on_tokens(access_token, refresh_token, expires_in_seconds)``: persist the new
#: pair. Awaited before the new access token is used (the used refresh token is dead).
TokenCallback = Callable[[str, str, int], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """How to reach and authorize the account.

    Timings are in seconds. ``clock`` is the monotonic clock used for keep-alive and pacing
    (tests may pass their own). ``access_token_expires_at`` (epoch seconds) lets the session
    refresh ``refresh_ahead`` seconds before expiry; unknown means refresh only on demand
    (``refresh_tokens()``) or when the server refuses the token.
    """

    host: str
    port: int = 5035
    ca_file: Path | None = None  # PEM to trust instead of the system store
    client_id: str
    client_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    account_id: int
    access_token_expires_at: float | None = None  # epoch seconds, when known
    refresh_ahead: float = 86_400.0  # refresh this long before expiry (contract: a day)
    request_timeout: float = 10.0  # for the answer, from when the frame leaves the pacer
    #: the longest a request waits for its turn under the rate limit; past it, it is not sent at
    #: all (BrokerUnavailable: nothing executed) rather than sent stale. None: request_timeout
    max_queue_wait: float | None = None
    connect_timeout: float = 10.0
    heartbeat_interval: float = 9.0  # the FAQ asks for one at least every 10 s
    silence_limit: float | None = None  # default 3 × heartbeat_interval
    reconnect_base: float = 1.0
    reconnect_max: float = 60.0
    auth_failure_backoff: float = 300.0
    requests_per_second: int = 50
    historical_per_second: int = 5
    check_account_list: bool = True
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
