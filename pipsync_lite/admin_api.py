"""Admin endpoints the CLI calls (behind ``server.api_token``): approvals and the kill switch.

- ``POST /admin/signals/{id}/approve`` → 202 ``accepted`` (sent), 422 (the guard refuses it
  now), 404 (no such signal), 409 (not waiting, or expired);
- ``POST /admin/signals/{id}/reject`` → 200 ``rejected``;
- ``GET /admin/approvals`` → the signals waiting, with their expiry;
- ``GET /admin/kill_switch`` → its state, what engaged it and the recent history;
- ``POST /admin/kill_switch`` ``{"state": "on"|"off", "reason": "..."}``.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from pipsync_lite.engine import Engine, Outcome
from pipsync_lite.killswitch import OPERATOR
from pipsync_lite.web import STATE, problem
from pipsync_lite.windows import trading_day_label

log = structlog.get_logger("pipsync_lite.admin_api")


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/admin/signals/{signal_id:\\d+}/approve", approve)
    app.router.add_post("/admin/signals/{signal_id:\\d+}/reject", reject)
    app.router.add_get("/admin/approvals", approvals)
    app.router.add_get("/admin/kill_switch", kill_switch_state)
    app.router.add_post("/admin/kill_switch", kill_switch_set)


def _engine(request: web.Request) -> Engine:
    return request.app[STATE].engine


async def approve(request: web.Request) -> web.Response:
    outcome = await _engine(request).approve(int(request.match_info["signal_id"]))
    return _decided(outcome)


async def reject(request: web.Request) -> web.Response:
    outcome = await _engine(request).reject(int(request.match_info["signal_id"]))
    return _decided(outcome)


def _decided(outcome: Outcome) -> web.Response:
    sid = outcome.signal_id
    if outcome.kind == "accepted":
        body: dict[str, Any] = {"signal_id": sid, "status": "accepted", "lots": None if outcome.lots is None else str(outcome.lots)}
        if outcome.notes:
            body["notes"] = list(outcome.notes)
        return web.json_response(body, status=202)
    if outcome.kind == "rejected" and outcome.rule == "manual_approval":
        return web.json_response({"signal_id": sid, "status": "rejected", "reason": outcome.reason}, status=200)
    if outcome.kind == "not_found":
        return problem(404, "Not Found", outcome.reason, kind="not_found", signal_id=sid)
    if outcome.kind in ("not_pending", "expired"):
        return problem(409, "Conflict", outcome.reason, kind=outcome.kind, rule=outcome.rule, signal_id=sid)
    if outcome.kind == "invalid":
        return problem(400, "Invalid alert", outcome.reason, kind="invalid", field=outcome.field, signal_id=sid)
    if outcome.kind == "unavailable":
        return problem(503, "Broker unavailable", outcome.reason, kind=outcome.rule, rule=outcome.rule, signal_id=sid)
    return problem(422, "Rejected", outcome.reason, kind=outcome.rule, rule=outcome.rule, signal_id=sid)


async def approvals(request: web.Request) -> web.Response:
    waiting = await _engine(request).approvals.pending()
    return web.json_response(
        {
            "approvals": [
                {"signal_id": w.signal_id, "requested_at": w.requested_at.isoformat(), "expires_at": w.expires_at.isoformat()}
                for w in waiting
            ]
        }
    )


async def kill_switch_state(request: web.Request) -> web.Response:
    return web.json_response(await _kill_state(_engine(request)))


async def _kill_state(engine: Engine) -> dict[str, Any]:
    now = engine.clock()
    state = engine.kill_switch.state(now)
    yaml_on = engine.config.risk.kill_switch
    body: dict[str, Any] = {
        "state": "on" if yaml_on or state is not None else "off",
        "yaml": yaml_on,
        "cause": "yaml" if yaml_on and state is None else None if state is None else state.cause,
        "reason": None if state is None else state.reason,
        "since": None if state is None else state.since.isoformat(),
        "until": None if state is None or state.until is None else state.until.isoformat(),
        "history": await engine.kill_switch.history(20),
    }
    return body


async def kill_switch_set(request: web.Request) -> web.Response:
    engine = _engine(request)
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    wanted = payload.get("state") if isinstance(payload, dict) else None
    if not isinstance(wanted, str) or wanted.lower() not in ("on", "off"):
        return problem(400, "Bad Request", 'send {"state": "on"} or {"state": "off"}', kind="invalid", field="state")
    now = engine.clock()
    if wanted.lower() == "on":
        reason = payload.get("reason") if isinstance(payload.get("reason"), str) else "engaged from the command line"
        if engine.kill_switch.state(now) is None:
            await engine.kill_switch.engage(OPERATOR, reason[:500], now)
        return web.json_response(await _kill_state(engine))
    if engine.config.risk.kill_switch:
        return problem(
            409, "Conflict", "the YAML sets risk.kill_switch: true, which holds it on: remove it and reload",
            kind="kill_switch_in_yaml",
        )  # fmt: skip
    limits = engine.config.risk
    await engine.kill_switch.release(now, OPERATOR, day=trading_day_label(now, limits.day_boundary, limits.zone))
    return web.json_response(await _kill_state(engine))
