"""What the operator's commands share: the config with readable errors, and output for people.

Tables are plain aligned text (numbers right-aligned); ``--json`` prints the API's own JSON.
Exit codes (as ``approve``/``reject``/``kill``): 0 done, 1 the broker, the guard or the daemon
said no, 2 bad configuration or arguments, or no daemon answering.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from pipsync_lite.config import Config, load_config
from pipsync_lite.errors import ConfigError

OK, REFUSED, USAGE = 0, 1, 2
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_RELATIVE = re.compile(r"^(\d+)([mhdw])$")


class Exit(Exception):
    """Stop the command with this exit code after printing ``message`` to stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code, self.message = code, message


def config_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        raise Exit(USAGE, "\n".join([f"{path}: invalid configuration", *(f"  {e}" for e in err.errors)])) from None


def run(command: Callable[[], int]) -> int:
    """Run a command body, turning :class:`Exit` and configuration errors into exit codes."""
    try:
        return command()
    except Exit as stop:
        if stop.message:
            print(stop.message, file=sys.stderr)
        return stop.code
    except ConfigError as err:
        print("\n".join(err.errors), file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 130


def since(text: str | None, now: datetime | None = None) -> str | None:
    """``--since``: an RFC 3339 time (a time without zone is UTC), ``today``, or ``30m``/``12h``/``7d``/``2w`` ago."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    value = text.strip().lower()
    if value == "today":
        moment = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elif match := _RELATIVE.match(value):
        amount, unit = int(match.group(1)), match.group(2)
        moment = now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: amount})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise Exit(USAGE, f"--since: {text!r} is not a time (2024-05-01T08:00:00Z, today, 30m, 12h, 7d)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print ``rows`` under ``headers``, columns aligned; an empty list says so."""
    out = out or sys.stdout
    if not rows:
        print("(none)", file=out)
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_NUMBER.match(r[i]) or r[i] in ("", "-") for r in cells) for i in range(len(headers))]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        line = "  ".join(
            (c.rjust(w) if numeric[i] else c.ljust(w)) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        print(line.rstrip(), file=out)


def dump(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def short_time(iso: str | None) -> str:
    """``2024-05-01T08:00:00.123+00:00`` → ``2024-05-01 08:00:00``."""
    return "-" if not iso else iso[:19].replace("T", " ")
