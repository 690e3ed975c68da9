"""The guard's commands: ``approve ID``, ``reject ID``, ``kill on|off`` (through the running
daemon's HTTP API with ``server.api_token``) and ``replay`` (offline, on the trade log).

Exit codes: 0 done; 1 the daemon answered but refused (not waiting, expired, rejected by
the guard, ...); 2 the configuration is invalid or the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from pipsync_lite.config import Config, load_config
from pipsync_lite.daemon_client import DaemonUnreachable, call
from pipsync_lite.errors import ConfigError

COMMANDS = ("approve", "reject", "kill", "replay")


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    for verb, help_text in (("approve", "send a signal waiting for manual approval"),
                            ("reject", "refuse a signal waiting for manual approval")):  # fmt: skip
        parser = with_config(sub.add_parser(verb, help=help_text))
        parser.add_argument("signal_id", type=int, metavar="ID", help="the signal_id from the 202 answer")
    kill = with_config(sub.add_parser("kill", help="the runtime kill switch: on, off, or show its state"))
    kill.add_argument("state", choices=("on", "off", "status"), type=str.lower)
    kill.add_argument("--reason", default=None, help="recorded with `kill on`")
    replay = sub.add_parser("replay", help="judge the stored signals again under another risk config (what-if)")
    replay.add_argument("-c", "--config", required=True, help="the NEW YAML (its storage.path names the trade log)")
    replay.add_argument("--since", default=None, help="only signals received since DATE (2026-11-20 or ISO-8601, UTC)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    if args.command == "replay":
        return _replay(config, args.since)
    try:
        if args.command in ("approve", "reject"):
            return _decide(config, args.command, args.signal_id)
        return _kill(config, args.state, args.reason)
    except DaemonUnreachable as err:
        print(f"pipsync-lite {args.command}: {err}", file=sys.stderr)
        return 2


def _decide(config: Config, verb: str, signal_id: int) -> int:
    answer = call(config, "POST", f"/admin/signals/{signal_id}/{verb}")
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.status in (200, 202):
        lots = f" ({body['lots']} lots)" if body.get("lots") else ""
        print(f"signal {signal_id}: {body.get('status')}{lots}")
        for note in body.get("notes", []):
            print(f"  note: {note}")
        return 0
    rule = f" [{body['rule']}]" if body.get("rule") else ""
    print(f"signal {signal_id}: {body.get('title', answer.status)}{rule}: {body.get('detail', '')}", file=sys.stderr)
    return 1


def _kill(config: Config, state: str, reason: str | None) -> int:
    if state == "status":
        answer = call(config, "GET", "/admin/kill_switch")
    else:
        payload: dict[str, Any] = {"state": state}
        if reason:
            payload["reason"] = reason
        answer = call(config, "POST", "/admin/kill_switch", payload)
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.status != 200:
        print(f"kill {state}: {body.get('detail', answer.status)}", file=sys.stderr)
        return 1
    line = f"kill switch: {body.get('state')}"
    if body.get("cause"):
        line += f" (by {body['cause']}{': ' + body['reason'] if body.get('reason') else ''})"
    if body.get("until"):
        line += f" until {body['until']}"
    print(line)
    return 0


def _replay(config: Config, since_text: str | None) -> int:
    from pipsync_lite.replay import parse_since, replay

    if not config.storage.path.exists():
        print(f"replay: no trade log at {config.storage.path} (storage.path)", file=sys.stderr)
        return 2
    try:
        since = parse_since(since_text) if since_text else None
    except ValueError:
        print(f"replay: --since {since_text!r} is not a date (2026-11-20 or ISO-8601)", file=sys.stderr)
        return 2
    asyncio.run(replay(config, since, sys.stdout))
    return 0
