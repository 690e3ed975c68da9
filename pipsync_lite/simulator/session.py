"""Session requests: application and account authorization, tokens, version and logout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from pipsync_lite import protos
from pipsync_lite.simulator.dispatch import RequestContext, Router
from pipsync_lite.simulator.tokens import ACCESS_TOKEN_LIFETIME

if TYPE_CHECKING:
    from pipsync_lite.simulator.server import Simulator

log = structlog.get_logger(__name__)

#: What the simulator reports as its Open API version.
VERSION = "91"


class SessionHandlers:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def register(self, router: Router) -> None:
        router.add("ProtoOAApplicationAuthReq", self.application_auth)
        router.add("ProtoOAVersionReq", self.version)
        router.add("ProtoOAGetAccountListByAccessTokenReq", self.account_list)
        router.add("ProtoOAAccountAuthReq", self.account_auth)
        router.add("ProtoOARefreshTokenReq", self.refresh_token)
        router.add("ProtoOAAccountLogoutReq", self.account_logout)

    def application_auth(self, ctx: RequestContext, req: Any) -> None:
        if ctx.conn.app_authorized:
            # ALREADY_LOGGED_IN (14), not CH_CLIENT_ALREADY_AUTHENTICATED (103): the code
            # other clients are known to treat as benign; the live choice is unrecorded.
            ctx.error("ALREADY_LOGGED_IN", "Open API application is already authorized")
            return
        creds = self._sim.tokens.credentials
        if req.clientId != creds.client_id or req.clientSecret != creds.client_secret:
            log.info("sim_application_auth_failed", connection=ctx.conn.id)
            ctx.error("CH_CLIENT_AUTH_FAILURE", "clientId or clientSecret is incorrect")
            return
        ctx.conn.app_authorized = True
        ctx.reply(protos.messages.ProtoOAApplicationAuthRes())

    def version(self, ctx: RequestContext, req: Any) -> None:
        ctx.reply(protos.messages.ProtoOAVersionRes(version=VERSION))

    def account_list(self, ctx: RequestContext, req: Any) -> None:
        error = self._sim.tokens.error_for(req.accessToken)
        if error is not None:
            ctx.error(error, _TOKEN_DESCRIPTIONS[error])
            return
        account = self._sim.account
        ctx.reply(protos.messages.ProtoOAGetAccountListByAccessTokenRes(
            accessToken=req.accessToken,
            permissionScope=protos.model.SCOPE_TRADE,
            ctidTraderAccount=[protos.model.ProtoOACtidTraderAccount(
                ctidTraderAccountId=account.account_id, isLive=False,
                traderLogin=account.trader_login)],
        ))

    def account_auth(self, ctx: RequestContext, req: Any) -> None:
        error = self._sim.tokens.error_for(req.accessToken)
        if error is not None:
            ctx.error(error, _TOKEN_DESCRIPTIONS[error])
            return
        if req.ctidTraderAccountId != self._sim.account.account_id:
            ctx.error("ACCOUNT_NOT_AUTHORIZED",
                      "Trading account is not authorized for this access token")
            return
        # Re-authorizing an authorized account succeeds and switches the session to the
        # presented token: that is how a client moves a live session onto a refreshed token.
        ctx.conn.accounts[req.ctidTraderAccountId] = req.accessToken
        ctx.reply(protos.messages.ProtoOAAccountAuthRes(
            ctidTraderAccountId=req.ctidTraderAccountId))

    def refresh_token(self, ctx: RequestContext, req: Any) -> None:
        tokens = self._sim.tokens
        old_access = tokens.credentials.access_token
        pair = tokens.refresh(req.refreshToken)
        if pair is None:
            ctx.error("CH_ACCESS_TOKEN_INVALID", "Refresh token is invalid or already used")
            return
        access, refresh = pair
        log.info("sim_token_refreshed", connection=ctx.conn.id)
        ctx.reply(protos.messages.ProtoOARefreshTokenRes(
            accessToken=access, tokenType="bearer", expiresIn=ACCESS_TOKEN_LIFETIME,
            refreshToken=refresh))
        if self._sim.refresh_ends_sessions:
            self._sim.hub.end_token_sessions(old_access, "Access token was refreshed", ctx)

    def account_logout(self, ctx: RequestContext, req: Any) -> None:
        account_id = req.ctidTraderAccountId
        ctx.reply(protos.messages.ProtoOAAccountLogoutRes(ctidTraderAccountId=account_id))
        # The logout is complete only with AccountDisconnectEvent, as on the real server.
        self._sim.hub.end_account_session(ctx.conn, account_id)
        ctx.reply(protos.messages.ProtoOAAccountDisconnectEvent(ctidTraderAccountId=account_id))


_TOKEN_DESCRIPTIONS = {
    "OA_AUTH_TOKEN_EXPIRED": "Access token expired",
    "CH_ACCESS_TOKEN_INVALID": "Access token is invalid",
}
