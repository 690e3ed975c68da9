"""The HTTP edge: ``make_app(deps)`` with the webhook, health probes and RFC 7807 errors."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from pipsync_lite.access import SIGNATURE_HEADER, Access
from pipsync_lite.engine import Engine, Outcome

log = structlog.get_logger("pipsync_lite.web")

MAX_BODY = 64 * 1024
PROBLEM = "application/problem+json"


@dataclass
class WebState:
    """What the handlers share: the engine, readiness, and counters."""

    engine: Engine
    webhook_token: str
    api_token: str | None
    readiness: Callable[[], dict[str, Any]]
    ready: Callable[[], bool]
    accepting: bool = True
    access: Access = field(default_factory=Access)
    body_timeout: float = 15.0  # seconds to receive a body once its headers arrived
    counters: dict[str, int] = field(
        default_factory=lambda: {"wrong_token": 0, "ip_not_allowed": 0, "bad_signature": 0, "slow_body": 0}
    )


STATE = web.AppKey("state", WebState)


def problem(status: int, title: str, detail: str = "", kind: str | None = None, **members: Any) -> web.Response:
    retry_after = members.pop("retry_after", None)
    body: dict[str, Any] = {
        "type": f"/problems/{kind}" if kind else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in members.items() if v is not None})
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body, status=status, content_type=PROBLEM, headers=headers)


@web.middleware
async def problems_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as problem+json; an unexpected one never shows its internals."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, exc.reason)
        if "Allow" in exc.headers:  # 405 names the methods that would work
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("request_crashed", path=request.path)
        return problem(500, "Internal Server Error", "the error was logged")


#: Paths behind ``server.api_token`` (Authorization: Bearer <token>).
PROTECTED_PREFIXES = ("/v1/", "/api/", "/admin/", "/metrics")


@web.middleware
async def api_token_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The read API, admin endpoints and the CLI's calls need the API token; nothing else does."""
    if not request.path.startswith(PROTECTED_PREFIXES):
        return await handler(request)
    expected = request.app[STATE].api_token
    if not expected:
        return problem(404, "Not Found", "the API is disabled: set server.api_token", kind="api_disabled")
    supplied = request.headers.get("Authorization", "")
    scheme, _, token = supplied.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        response = problem(401, "Unauthorized", "a valid 'Authorization: Bearer <server.api_token>' header is required", kind="unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="pipsync-lite"'
        return response
    return await handler(request)


async def webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    source_ip = state.access.client_ip(request.remote, request.headers.getall("X-Forwarded-For", []))
    verdict = state.access.ip_allowed(source_ip)
    if not verdict.ok:
        state.counters["ip_not_allowed"] += 1
        log.info("webhook_ip_not_allowed", source_ip=source_ip)
        return problem(403, "Forbidden", verdict.reason, kind="ip_not_allowed")
    token = request.match_info["token"]
    if not hmac.compare_digest(token.encode(), state.webhook_token.encode()):
        state.counters["wrong_token"] += 1
        return problem(404, "Not Found")
    if not state.accepting:
        return problem(503, "Service Unavailable", "shutting down; retry later", kind="shutting_down")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return await _too_large(state, request.content_length, source_ip)
    try:
        if request.content.is_eof():  # the body came with the headers (as alerts do): no wait, no timer
            body = await request.read()
        else:
            async with asyncio.timeout(state.body_timeout):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return await _too_large(state, request.content_length, source_ip)
    except TimeoutError:
        state.counters["slow_body"] += 1
        detail = f"the body did not arrive within {state.body_timeout:g} s"
        return problem(408, "Request Timeout", detail, kind="slow_body")
    verdict = state.access.signature_valid(request.headers.get(SIGNATURE_HEADER), body)
    if not verdict.ok:
        state.counters["bad_signature"] += 1
        log.info("webhook_signature_refused", source_ip=source_ip, reason=verdict.reason)
        return problem(401, "Unauthorized", verdict.reason, kind="signature")
    outcome = await state.engine.receive(body, source_ip=source_ip)
    return answer(outcome)


async def _too_large(state: WebState, size: int | None, source_ip: str | None) -> web.Response:
    detail = f"the body{f' of {size} bytes' if size else ''} is over the {MAX_BODY // 1024} KiB limit"
    await state.engine.record_oversized(detail, source_ip)
    return problem(413, "Payload Too Large", detail, kind="too_large")


def answer(outcome: Outcome) -> web.Response:
    """Engine outcome → the contract's HTTP answer."""
    if outcome.kind == "accepted":
        body: dict[str, Any] = {"signal_id": outcome.signal_id, "status": "accepted"}
        if outcome.lots is not None:
            body["lots"] = str(outcome.lots)
        if outcome.notes:
            body["notes"] = list(outcome.notes)
        return web.json_response(body, status=202)
    if outcome.kind == "pending_approval":
        return web.json_response({"signal_id": outcome.signal_id, "status": "pending_approval"}, status=202)
    if outcome.kind == "rate_limited":
        return problem(429, "Too Many Requests", outcome.reason, kind="rate_limited", rule=outcome.rule,
                       signal_id=outcome.signal_id, retry_after=outcome.retry_after)  # fmt: skip
    if outcome.kind == "queued":
        queued: dict[str, Any] = {"signal_id": outcome.signal_id, "status": "queued", "notes": list(outcome.notes)}
        return web.json_response(queued, status=202)
    if outcome.kind == "duplicate":
        return web.json_response({"signal_id": outcome.signal_id, "status": "duplicate"}, status=200)
    if outcome.kind == "invalid":
        detail = f"{outcome.field}: {outcome.reason}"
        return problem(400, "Invalid alert", detail, kind="invalid", field=outcome.field, signal_id=outcome.signal_id)
    if outcome.kind == "unavailable":
        return problem(
            503, "Broker unavailable", outcome.reason, kind=outcome.rule, rule=outcome.rule, signal_id=outcome.signal_id
        )
    return problem(422, "Rejected", outcome.reason, kind=outcome.rule, rule=outcome.rule, signal_id=outcome.signal_id)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(state.readiness(), status=200 if state.ready() else 503)


def make_app(state: WebState) -> web.Application:
    from pipsync_lite.admin_api import add_admin_routes  # it builds on this module
    # client_max_size enforces the 64 KiB limit on bodies without a Content-Length too.
    app = web.Application(client_max_size=MAX_BODY, middlewares=[problems_middleware, api_token_middleware])
    app[STATE] = state
    app.router.add_post("/webhook/{token}", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_admin_routes(app)
    return app
