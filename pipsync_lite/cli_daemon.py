"""Operator commands that ask the running daemon: ``send``, ``signals``, ``trades``, ``positions``.

They reach it over its HTTP API on the configured host/port with ``server.api_token`` (the
read API under ``/v1/``), so they work wherever the daemon's database lives. ``send`` posts an
alert exactly as TradingView would (it is processed as a webhook alert and trades for real),
then follows it until the broker has answered.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from typing import Any

from pipsync_lite import console
from pipsync_lite.config import Config
from pipsync_lite.daemon_client import Answer, DaemonUnreachable, call
from pipsync_lite.history import ACCEPTED_STATUSES

SETTLED = frozenset({"executed", "failed", "unknown"})
_GOOD = frozenset({"accepted", "executed", "duplicate", "pending_approval"})


def register(sub: Any, with_config: Any) -> None:
    send = with_config(sub.add_parser("send", help="post an alert to the running daemon and show what happened"))
    send.add_argument("alert", nargs="?", help="the alert body (JSON, key=value or PineConnector); - reads stdin")
    send.add_argument("--file", help="read the alert body from this file")
    send.add_argument("--wait", type=float, default=15.0, help="seconds to follow the order (default: %(default)s)")
    send.add_argument("--json", action="store_true", help="print the signal as JSON")
    send.set_defaults(operator=cmd_send)

    signals = with_config(sub.add_parser("signals", help="the signals the daemon received (newest first)"))
    signals.add_argument("id", nargs="?", type=int, help="show this one signal in full")
    _list_options(signals, statuses="accepted, executed, failed, rejected, invalid, duplicate, ...")
    signals.set_defaults(operator=cmd_signals)

    trades = with_config(sub.add_parser("trades", help="trades of the trade log with their P/L (newest first)"))
    _list_options(trades, statuses="open or closed")
    trades.set_defaults(operator=cmd_trades)

    positions = with_config(sub.add_parser("positions", help="open positions, live from the broker"))
    positions.add_argument("--symbol", help="only this symbol")
    positions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    positions.set_defaults(operator=cmd_positions)


def _list_options(parser: argparse.ArgumentParser, statuses: str) -> None:
    parser.add_argument("--symbol", help="only this broker symbol")
    parser.add_argument("--status", help=f"only this status ({statuses})")
    parser.add_argument("--since", help="only since this time: 2024-05-01T08:00:00Z, today, 30m, 12h, 7d")
    parser.add_argument("--limit", type=int, default=20, help="how many (1-200, default: %(default)s)")
    parser.add_argument("--cursor", help="continue after this id (printed under a full page)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON page")


def _get(config: Config, path: str, **params: Any) -> Any:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    answer = _call(config, "GET", f"{path}?{query}" if query else path)
    if answer.status != 200:
        raise console.Exit(console.REFUSED, _problem_text(answer))
    return answer.body


def _call(config: Config, method: str, path: str, **kwargs: Any) -> Answer:
    try:
        return call(config, method, path, **kwargs)
    except DaemonUnreachable as err:  # as approve/reject/kill: 2, nothing was judged
        raise console.Exit(console.USAGE, f"{err} (is `pipsync-lite run` going?)") from None


def _problem_text(answer: Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    detail = body.get("detail") or body.get("title") or str(answer.body)
    return f"the daemon answered {answer.status}: {detail}"


# -- send ------------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        alert = _alert_body(args)
        answer = _call(config, "POST", "/v1/signals", body=alert, content_type=_content_type(alert))
        payload = answer.body if isinstance(answer.body, dict) else {}
        signal_id = payload.get("signal_id")
        if answer.status < 400:
            status = str(payload.get("status", "?"))
        else:
            status = str(payload.get("rule") or payload.get("field") and "invalid" or payload.get("title") or "error")
        print(f"{answer.status} {status}" + (f": signal {signal_id}" if signal_id else "")
              + (f", {payload['lots']} lots" if payload.get("lots") else ""))
        if answer.status >= 400 and signal_id is None:
            print(f"  {payload.get('detail', answer.body)}")
        for note in payload.get("notes") or []:
            print(f"  note: {note}")
        if signal_id is None:
            return console.REFUSED
        signal = _follow(config, int(signal_id), args.wait if answer.status == 202 else 0.0)
        if args.json:
            console.dump(signal)
        else:
            _print_signal(signal)
        return console.OK if signal["status"] in _GOOD and answer.status < 400 else console.REFUSED

    return console.run(body)


def _alert_body(args: argparse.Namespace) -> bytes:
    if args.file:
        with open(args.file, "rb") as handle:
            return handle.read()
    if args.alert is None or args.alert == "-":
        if args.alert is None and sys.stdin.isatty():
            raise console.Exit(console.USAGE, 'send: give the alert, e.g. send \'{"action": "buy", "symbol": "EURUSD", "lots": 0.01}\'')
        return sys.stdin.buffer.read()
    return args.alert.encode()


def _content_type(alert: bytes) -> str:
    return "application/json" if alert.lstrip()[:1] in (b"{", b"[") else "text/plain; charset=utf-8"


def _follow(config: Config, signal_id: int, wait: float) -> dict[str, Any]:
    """The signal once the broker has answered (or when ``wait`` runs out)."""
    deadline = time.monotonic() + wait
    while True:
        signal = _get(config, f"/v1/signals/{signal_id}")
        if signal["status"] in SETTLED or signal["status"] not in ACCEPTED_STATUSES or time.monotonic() >= deadline:
            return signal  # type: ignore[no-any-return]
        time.sleep(0.1)  # polling another process's progress, bounded by the deadline above


def _why(s: dict[str, Any]) -> str:
    return ": ".join(str(x) for x in (s.get("rule") or s.get("field"), s.get("reason")) if x)


def _print_signal(s: dict[str, Any]) -> None:
    why = _why(s)
    print(f"signal {s['id']}: {s['status']} (verdict {s['verdict']})" + (f" — {why}" if why else ""))
    kind = f"{s['dialect']} alert" if s.get("dialect") else "alert"
    print(f"  received {console.short_time(s['received_at'])} UTC, {kind}"
          + (f", {s['action']} {s.get('symbol') or ''}".rstrip() if s.get("action") else ""))
    fields = {k: v for k, v in (s.get("parsed") or {}).items() if k not in ("dialect", "action", "symbol")}
    if fields:
        print("  fields: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
    for o in s.get("orders", []):
        answer = f"{o['status']}" + (f" @ {o['execution_price']}" if o.get("execution_price") else "")
        if o.get("error_code"):
            answer += f" {o['error_code']}: {o.get('error_text') or ''}"
        ids = ", ".join(f"{k} {o[v]}" for k, v in (("order", "broker_order_id"), ("position", "position_id")) if o.get(v))
        print(f"  {o['purpose']} {o.get('side') or ''} {o.get('symbol') or ''}: {answer}" + (f" ({ids})" if ids else ""))
    if s.get("raw_body") is not None:
        print(f"  body: {s['raw_body']}")


# -- lists ---------------------------------------------------------------------------------------


def _page(args: argparse.Namespace, config: Config, path: str) -> dict[str, Any]:
    if not 1 <= args.limit <= 200:
        raise console.Exit(console.USAGE, "--limit: between 1 and 200")
    return _get(config, path, limit=args.limit, cursor=args.cursor, symbol=args.symbol, status=args.status,  # type: ignore[no-any-return]
                since=console.since(args.since))


def _more(page: dict[str, Any]) -> None:
    if page.get("next_cursor"):
        print(f"\nmore: add --cursor {page['next_cursor']}")


def cmd_signals(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        if args.id is not None:
            signal = _get(config, f"/v1/signals/{args.id}")
            if args.json:
                console.dump(signal)
            else:
                _print_signal(signal)
            return console.OK
        page = _page(args, config, "/v1/signals")
        if args.json:
            console.dump(page)
            return console.OK
        console.table(
            ["ID", "RECEIVED (UTC)", "ACTION", "SYMBOL", "LOTS", "STATUS", "WHY", "BROKER"],
            [[s["id"], console.short_time(s["received_at"]), s.get("action"), s.get("symbol"), s.get("lots"), s["status"],
              _why(s) or None,
              "; ".join(_order_text(o) for o in s.get("orders", [])) or None]
             for s in page["items"]],
        )
        _more(page)
        return console.OK

    return console.run(body)


def _order_text(o: dict[str, Any]) -> str:
    text = f"{o['purpose']} {o['status']}"
    if o.get("execution_price"):
        text += f" @ {o['execution_price']}"
    if o.get("error_code"):
        text += f" {o['error_code']}"
    return text


def cmd_trades(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        page = _page(args, config, "/v1/trades")
        if args.json:
            console.dump(page)
            return console.OK
        console.table(
            ["POSITION", "SYMBOL", "SIDE", "LOTS", "ENTRY", "CLOSE", "STATUS", "REASON", "NET P/L", "OPENED (UTC)", "CLOSED (UTC)", "SIGNAL"],
            [[t["position_id"], t.get("symbol"), t.get("side"), t.get("lots") or t.get("volume"), t.get("entry_price"),
              t.get("close_price"), t["status"], t.get("close_reason"), t["net_profit"], console.short_time(t.get("opened_at")),
              console.short_time(t.get("closed_at")), t.get("signal_id")]
             for t in page["items"]],
        )
        _more(page)
        return console.OK

    return console.run(body)


def cmd_positions(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        page = _get(config, "/v1/positions", limit=200, symbol=args.symbol)
        if args.json:
            console.dump(page)
            return console.OK
        console.table(
            ["POSITION", "SYMBOL", "SIDE", "LOTS", "ENTRY", "SL", "TP", "FLOATING", "OPENED (UTC)", "SIGNAL"],
            [[p["position_id"], p["symbol"], p["side"], p.get("lots") or p["volume"], p["entry_price"], p.get("stop_loss"),
              p.get("take_profit"), p.get("unrealized_net"), console.short_time(p.get("opened_at")), p.get("signal_id")]
             for p in page["items"]],
        )
        return console.OK

    return console.run(body)
