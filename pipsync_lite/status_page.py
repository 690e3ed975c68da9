"""The status page at ``GET /``: broker, kill switch, today's P/L, positions, the last signals.

Server-rendered HTML (``templates/status.html``) and a few lines of JS that fetch the panel
again (``GET /status/panel``) every few seconds; no build step. Behind ``server.api_token``:
either ``Authorization: Bearer <token>`` or the session cookie set by the login form
(``POST /login``). The cookie holds an expiry and an HMAC keyed with the API token, never the
token itself; it is HttpOnly and SameSite=Strict, and only opens the page and its panel (the
``/v1/`` API still takes the bearer header only). Every response carries a strict
Content-Security-Policy with a per-response nonce for the inline style and script.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from string import Template
from typing import Any

from aiohttp import web

from pipsync_lite import history
from pipsync_lite.api import LiveBroker, live_positions
from pipsync_lite.api_models import Position
from pipsync_lite.store import Store
from pipsync_lite.web import problem

COOKIE = "pipsync_session"
SESSION_SECONDS = 7 * 24 * 3600
REFRESH_MS = 3000
SIGNALS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class StatusDeps:
    store: Store
    broker: LiveBroker
    api_token: str | None
    account_id: int
    broker_detail: Callable[[], str | None]
    kill_switch: Callable[[], str | None]  # why it is engaged; None while off
    token_expires_at: Callable[[], float | None]
    balance: Callable[[], tuple[Decimal, str] | None]
    #: The trading day (risk.day_boundary, risk.timezone) and what its deals realized; None
    #: while the account is not loaded (the page then counts the UTC day from the trade log).
    trading_day: Callable[[], Awaitable[tuple[str, Decimal] | None]] | None = None


DEPS = web.AppKey("status_deps", StatusDeps)


def _template(name: str) -> Template:
    return Template(resources.files("pipsync_lite").joinpath("templates", name).read_text(encoding="utf-8"))


# -- the session cookie ---------------------------------------------------------------------------


def session_value(api_token: str, expires: int) -> str:
    mac = hmac.new(api_token.encode(), f"status-session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def _authorized(request: web.Request, api_token: str) -> bool:
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), api_token.encode()):
        return True
    expires, _, _mac = request.cookies.get(COOKIE, "").partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(request.cookies[COOKIE].encode(), session_value(api_token, int(expires)).encode())


def _html(text: str, nonce: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _disabled() -> web.Response:
    return problem(404, "Not Found", "the status page is disabled: set server.api_token", kind="api_disabled")


# -- handlers --------------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    if not deps.api_token:
        return _disabled()
    if not _authorized(request, deps.api_token):
        return _see_other("/login")
    nonce = secrets.token_urlsafe(16)
    body = _template("status.html").substitute(
        nonce=nonce,
        account=html.escape(str(deps.account_id)),
        updated=datetime.now(UTC).strftime("%H:%M:%S UTC"),
        panel=await render_panel(deps),
        refresh_ms=REFRESH_MS,
    )
    return _html(body, nonce)


async def panel(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    if not deps.api_token:
        return _disabled()
    if not _authorized(request, deps.api_token):
        return problem(401, "Unauthorized", "log in at /login", kind="unauthorized")
    return _html(await render_panel(deps), secrets.token_urlsafe(16))


async def login_form(request: web.Request) -> web.StreamResponse:
    if not request.app[DEPS].api_token:
        return _disabled()
    return _login(message="")


def _login(message: str, status: int = 200) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    shown = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return _html(_template("login.html").substitute(nonce=nonce, message=shown), nonce, status)


async def login(request: web.Request) -> web.StreamResponse:
    api_token = request.app[DEPS].api_token
    if not api_token:
        return _disabled()
    form = await request.post()
    supplied = str(form.get("token", "")).strip()
    if not hmac.compare_digest(supplied.encode(), api_token.encode()):
        return _login("That is not the API token.", status=401)
    expires = int(time.time()) + SESSION_SECONDS
    response = _see_other("/")
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    response.set_cookie(
        COOKIE, session_value(api_token, expires), max_age=SESSION_SECONDS, path="/", httponly=True,
        samesite="Strict", secure=secure,
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = _see_other("/login")
    response.del_cookie(COOKIE, path="/")
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def install(app: web.Application, deps: StatusDeps) -> None:
    app[DEPS] = deps
    app.router.add_get("/", page)
    app.router.add_get("/status/panel", panel)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


# -- rendering ------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value {tone}">{value}</div><div class="sub">{sub}</div></div>'
    )


async def render_panel(deps: StatusDeps) -> str:
    broker_ready = deps.broker.ready
    positions: list[Position] = await live_positions(deps.broker) if broker_ready else []
    day = await deps.trading_day() if deps.trading_day is not None else None
    if day is None:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        day = (f"{midnight.date().isoformat()} UTC", await history.realized_since(deps.store, midnight))
    day_label, realized = day
    kill = deps.kill_switch()
    floating = [Decimal(p.unrealized_net) for p in positions if p.unrealized_net is not None]
    balance = deps.balance()
    money = f" {_e(balance[1])}" if balance else ""
    expires_at = deps.token_expires_at()
    cards = [
        _card("Broker", "connected" if broker_ready else "not connected",
              _e(deps.broker_detail() or ""), "ok" if broker_ready else "bad"),
        _card("Kill switch", "ON" if kill else "off", _e(kill or ""), "bad" if kill else "ok"),
        _card("Today's P/L", f"{_e(_signed(realized))}{money}",
              (f"realized on {_e(day_label)}"
               + (f" · floating {_e(_signed(sum(floating, Decimal(0))))}{money}" if floating else "")),
              "bad" if realized < 0 else "ok" if realized > 0 else ""),
        _card("Balance", f"{_e(balance[0])}{money}" if balance else "—", f"account {_e(deps.account_id)}"),
        _card("Open positions", str(len(positions)), "" if broker_ready else "broker not connected"),
        _card("Token", _token_left(expires_at), "access token lifetime"),
    ]
    signals = await history.signals(deps.store, history.Filters(SIGNALS_SHOWN))
    orders = await history.orders_of(deps.store, [s["id"] for s in signals[:SIGNALS_SHOWN]])
    return (
        f'<section class="cards">{"".join(cards)}</section>'
        f"<h2>Open positions</h2>{_positions_table(positions)}"
        f"<h2>Last {SIGNALS_SHOWN} signals</h2>{_signals_table(signals[:SIGNALS_SHOWN], orders)}"
    )


def _signed(value: Decimal) -> str:
    return f"+{value}" if value > 0 else str(value)


def _token_left(expires_at: float | None) -> str:
    if expires_at is None:
        return "unknown"
    left = int(expires_at - time.time())
    if left <= 0:
        return '<span class="bad">expired</span>'
    return f"{left // 86400} d {left % 86400 // 3600} h" if left >= 86400 else f'<span class="bad">{left // 3600} h</span>'


def _positions_table(positions: list[Position]) -> str:
    if not positions:
        return '<table><tr><td class="empty">No open positions.</td></tr></table>'
    head = "<tr><th>Position</th><th>Symbol</th><th>Side</th><th>Lots</th><th>Entry</th><th>SL</th><th>TP</th><th>Floating</th><th>Signal</th></tr>"
    rows = "".join(
        f"<tr><td>{p.position_id}</td><td>{_e(p.symbol)}</td><td>{_e(p.side)}</td><td class=\"num\">{_e(p.lots or p.volume)}</td>"
        f'<td class="num">{_e(p.entry_price)}</td><td class="num">{_e(p.stop_loss)}</td><td class="num">{_e(p.take_profit)}</td>'
        f'<td class="num">{_e(p.unrealized_net)}</td><td>{_e(p.signal_id)}</td></tr>'
        for p in positions
    )
    return f"<table>{head}{rows}</table>"


def _signals_table(signals: list[dict[str, Any]], orders: dict[int, list[dict[str, Any]]]) -> str:
    if not signals:
        return '<table><tr><td class="empty">No signals yet.</td></tr></table>'
    head = "<tr><th>#</th><th>Received (UTC)</th><th>Alert</th><th>Fields</th><th>Verdict</th><th>Broker answer</th></tr>"
    rows = []
    for s in signals:
        parsed = json.loads(s["parsed"]) if s.get("parsed") else {}
        fields = ", ".join(f"{k}={v}" for k, v in parsed.items() if k not in ("action", "symbol", "dialect"))
        verdict = history.verdict(s["status"])
        tone = "ok" if verdict == "accepted" and s["status"] != "failed" else "muted" if verdict == "duplicate" else "bad"
        why = s.get("rule") or s.get("field")
        verdict_text = f'<span class="verdict {tone}">{_e(s["status"])}</span>'
        if why or s.get("reason"):
            verdict_text += f"<br><small>{_e(why)}{': ' if why and s.get('reason') else ''}{_e(s.get('reason'))}</small>"
        rows.append(
            f"<tr><td>{s['id']}</td><td class=\"nowrap\">{_e(str(s['received_at'])[:19].replace('T', ' '))}</td>"
            f"<td class=\"nowrap\">{_e(s.get('action'))} {_e(s.get('symbol'))}</td><td><code>{_e(fields)}</code></td>"
            f"<td>{verdict_text}</td><td>{_broker_answer(orders.get(s['id'], []))}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _broker_answer(orders: list[dict[str, Any]]) -> str:
    lines = []
    for o in orders:
        text = f"{o['purpose']} {o['status']}"
        if o.get("execution_price"):
            text += f" @ {o['execution_price']}"
        if o.get("error_code"):
            text += f" · {o['error_code']}: {o.get('error_text') or ''}"
        elif o.get("broker_order_id"):
            text += f" (order {o['broker_order_id']})"
        lines.append(_e(text))
    return "<br>".join(lines) or '<span class="muted">—</span>'
