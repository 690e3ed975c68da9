"""The CLI's side of the daemon's HTTP API: one authenticated request to the running daemon."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pipsync_lite.config import Config


class DaemonUnreachable(Exception):
    """The daemon is not running at the configured address, or the API is disabled."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


def base_url(config: Config) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{host}:{config.server.port}"


def call(
    config: Config,
    method: str,
    path: str,
    payload: Any = None,
    timeout: float = 10.0,
    *,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    """``method path`` on the daemon with ``server.api_token``; JSON in (or ``body`` as it is),
    JSON (or text) out."""
    if config.server.api_token is None:
        raise DaemonUnreachable("server.api_token is not set: the daemon's API is disabled")
    data = body if body is not None else None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        base_url(config) + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {config.server.api_token.get_secret_value()}",
            "Content-Type": content_type,
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _decode(response.read()))
    except urllib.error.HTTPError as err:
        return Answer(err.code, _decode(err.read()))
    except (urllib.error.URLError, OSError) as err:
        raise DaemonUnreachable(f"no daemon answers at {base_url(config)}: {getattr(err, 'reason', err)}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")
