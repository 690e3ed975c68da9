"""Telegram as a built-in notification channel: one short plain-text message per event.

Messages go through the Bot API's ``sendMessage`` (``<api_url>/bot<token>/sendMessage``); the
API base URL is configurable, so tests talk to a local fake. The bot token is part of the URL:
it never appears in the outbox, in a log line or in a recorded error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from pipsync_lite.config import TelegramConfig

#: ``(symbol, volume in protocol units) -> lots``, None when the symbol is not known.
LotsOf = Callable[[str, int], Decimal | None]


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int
    ok: bool
    error: str | None = None
    retry_after: float | None = None  # seconds, when Telegram asks us to slow down


async def send(session: aiohttp.ClientSession, config: TelegramConfig, text: str) -> SendResult:
    url = f"{config.api_url.rstrip('/')}/bot{config.bot_token.get_secret_value()}/sendMessage"
    payload = {"chat_id": config.chat_id, "text": text, "disable_web_page_preview": True}
    async with session.post(url, json=payload, allow_redirects=False) as response:
        raw = await response.read()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if 200 <= response.status < 300 and answer.get("ok") is True:
        return SendResult(response.status, True)
    params = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
    retry_after = params.get("retry_after") if isinstance(params.get("retry_after"), int | float) else None
    description = str(answer.get("description") or f"HTTP {response.status}")[:300]
    return SendResult(response.status, False, f"telegram: {description}", retry_after)


def message_text(body: Mapping[str, Any], lots_of: LotsOf) -> str:
    """The event (the outbound JSON body) as one line a trader reads on a phone."""
    kind = str(body.get("type", "event"))
    data: Mapping[str, Any] = body.get("data") or {}
    render = _RENDERERS.get(kind)
    text = render(data, lots_of) if render is not None else _generic(kind, data)
    return f"{text}\n{kind} · {body.get('time', '')}"


def _size(data: Mapping[str, Any], lots_of: LotsOf) -> str:
    symbol, volume = data.get("symbol"), data.get("volume", data.get("closed_volume"))
    if isinstance(symbol, str) and isinstance(volume, int):
        lots = lots_of(symbol, volume)
        if lots is not None:
            return f"{lots.normalize():f} lots "
        return f"volume {volume} "
    return ""


def _ids(data: Mapping[str, Any]) -> str:
    parts = [f"{name} {data[key]}" for key, name in (("position_id", "position"), ("signal_id", "signal")) if data.get(key)]
    return f" ({', '.join(parts)})" if parts else ""


def _signal_received(data: Mapping[str, Any], lots_of: LotsOf) -> str:
    what = " ".join(str(data[k]) for k in ("action", "symbol") if data.get(k))
    return f"📥 Signal {data.get('signal_id')}: {what or 'alert'} → {data.get('status', '?')}"


def _signal_rejected(data: Mapping[str, Any], lots_of: LotsOf) -> str:
    why = data.get("rule") or data.get("field") or data.get("status")
    return f"⛔ Signal {data.get('signal_id')} refused ({why}): {data.get('reason', '')}".rstrip(": ")


def _opened(data: Mapping[str, Any], lots_of: LotsOf) -> str:
    levels = "".join(f" · {name} {data[key]}" for key, name in (("stop_loss", "SL"), ("take_profit", "TP")) if data.get(key))
    side = str(data.get("side", "")).upper()
    return f"🟢 Opened {side} {_size(data, lots_of)}{data.get('symbol', '')} @ {data.get('price')}{levels}{_ids(data)}"


def _closed(icon: str, title: str) -> Callable[[Mapping[str, Any], LotsOf], str]:
    def render(data: Mapping[str, Any], lots_of: LotsOf) -> str:
        profit = f" · P/L {data['gross_profit']}" if data.get("gross_profit") is not None else ""
        partly = "" if data.get("fully_closed", True) else " (partly)"
        return f"{icon} {title}{partly}: {_size(data, lots_of)}{data.get('symbol', '')} @ {data.get('price')}{profit}{_ids(data)}"

    return render


def _order_failed(data: Mapping[str, Any], lots_of: LotsOf) -> str:
    what = " ".join(str(data[k]) for k in ("purpose", "side") if data.get(k))
    code = data.get("error_code") or data.get("outcome")
    return f"❗ Order failed: {what} {_size(data, lots_of)}{data.get('symbol', '')} → {code}: {data.get('error_text', '')}{_ids(data)}"


def _generic(kind: str, data: Mapping[str, Any]) -> str:
    icons = {
        "kill_switch.engaged": "🛑 Kill switch engaged",
        "broker.disconnected": "🔌 Broker disconnected",
        "broker.connected": "✅ Broker connected",
        "token.expiring": "⏳ cTrader token expiring: run `pipsync-lite auth`",
    }
    details = ", ".join(f"{k}={v}" for k, v in data.items())
    head = icons.get(kind, kind)
    return f"{head}: {details}" if details else head


_RENDERERS: dict[str, Callable[[Mapping[str, Any], LotsOf], str]] = {
    "signal.received": _signal_received,
    "signal.rejected": _signal_rejected,
    "trade.opened": _opened,
    "trade.closed": _closed("⚪", "Closed"),
    "trade.sl_hit": _closed("🔴", "Stop loss hit"),
    "trade.tp_hit": _closed("🎯", "Take profit hit"),
    "order.failed": _order_failed,
}
