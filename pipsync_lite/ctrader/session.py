"""The broker session: connect, authorize, load, keep alive, reconnect; route what arrives.

One background task owns the connection. Each round: verified TLS connect → ApplicationAuth →
GetAccountListByAccessToken (the account is in the token's list, scope trading) → AccountAuth
(refreshing the tokens once on CH_ACCESS_TOKEN_INVALID / OA_AUTH_TOKEN_EXPIRED) → SymbolsList +
AssetList → SymbolById (all symbols) → Trader → Reconcile → SubscribeSpots → ready. Then it waits
for the link to end and starts over after an exponential backoff with jitter. A bad client
secret or an account the token cannot trade is permanent until the user acts: it is logged,
surfaced as ``last_error`` and retried only every ``auth_failure_backoff`` seconds.

Keep-alive: a heartbeat after ``heartbeat_interval`` of outbound silence; after two thirds of
``silence_limit`` without any inbound frame a VersionReq probe (the server answers it, whether or
not it sends heartbeats itself); after ``silence_limit`` the link is declared dead and dropped.

Tokens: ``refresh()`` sends RefreshTokenReq, keeps the new pair, and awaits ``on_tokens`` (the
app persists it: the used refresh token is dead) before AccountAuth uses the new access token.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import structlog
from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.ctrader import translate
from pipsync_lite.ctrader.connection import Connection, Routed
from pipsync_lite.ctrader.model import BrokerEvent, ConnectionChange, Execution
from pipsync_lite.ctrader.protocol import Pacer
from pipsync_lite.ctrader.settings import ClientSettings, TokenCallback
from pipsync_lite.ctrader.state import BrokerState
from pipsync_lite.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerTimeout,
    BrokerUnavailable,
)
from pipsync_lite.waits import wait_event

log = structlog.get_logger(__name__)
P = protos.messages
R = TypeVar("R", bound=Message)

Subscriber = Callable[[BrokerEvent], None]

TOKEN_ERRORS = frozenset({"CH_ACCESS_TOKEN_INVALID", "OA_AUTH_TOKEN_EXPIRED"})
#: Error codes that need the user (credentials, token, account): raised as BrokerAuthError.
AUTH_ERRORS = TOKEN_ERRORS | {
    "CH_CLIENT_AUTH_FAILURE",
    "CH_OA_CLIENT_NOT_FOUND",
    "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
    "ACCOUNT_NOT_AUTHORIZED",
}
ALREADY_AUTHORIZED = frozenset({"ALREADY_LOGGED_IN", "CH_CLIENT_ALREADY_AUTHENTICATED"})
ERROR_TYPES = (P.ProtoOAErrorRes, P.ProtoOAOrderErrorEvent, protos.common.ProtoErrorRes)
#: What ``_on_message`` acts on whatever its clientMsgId. Any other message is parsed only when
#: it answers a request of ours: a margin or trader update nobody reads costs no protobuf parse.
EVENT_TYPES = frozenset(
    protos.payload_type_of(cls())
    for cls in (
        *ERROR_TYPES,
        P.ProtoOASpotEvent,
        P.ProtoOAExecutionEvent,
        P.ProtoOATrailingSLChangedEvent,
        P.ProtoOAClientDisconnectEvent,
        P.ProtoOAAccountDisconnectEvent,
        P.ProtoOAAccountsTokenInvalidatedEvent,
    )
)
SYMBOL_CHUNK = 500  # SymbolByIdReq ids per request: keeps each answer far below the frame limit


def error_from(code: str, description: str) -> BrokerRejected:
    """An Open API error code (a string) as our exception."""
    if code in AUTH_ERRORS:
        return BrokerAuthError(code, description)
    return BrokerRejected(code, description)


def raise_if_error(routed: Routed) -> None:
    message = routed.message
    if isinstance(message, ERROR_TYPES):
        raise error_from(message.errorCode, message.description)


class Session:
    """Owns the connection and the state; the client above turns requests into results."""

    def __init__(
        self,
        settings: ClientSettings,
        on_tokens: TokenCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.state = BrokerState()
        self.conn: Connection | None = None
        self.ready = False
        self.last_error: str | None = None
        self.token_expires_at = settings.access_token_expires_at
        self._on_tokens = on_tokens
        self._rng = rng or random.Random()
        self._access_token = settings.access_token
        self._refresh_token = settings.refresh_token
        self._token_lock = asyncio.Lock()
        self._ready_event = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._subscribers: list[Subscriber] = []
        self._wanted_spots: set[int] = set()
        self._subscribed: set[int] = set()
        self._asset_names: dict[int, str] = {}
        self._is_live = False
        self._task: asyncio.Task[None] | None = None
        self._reauth: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._id_prefix = "p" + "".join(self._rng.choices(string.ascii_lowercase, k=3)) + "-"
        self._id_counter = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stop_event.clear()
        self._task = asyncio.create_task(self._run(), name="ctrader-session")

    async def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        task, self._task = self._task, None
        if self.conn is not None:
            self.conn.close("client stopped")
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                if self.conn is not None:
                    self.conn.close("client stopped", abort=True)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        pending = [*self._background, *([self._reauth] if self._reauth is not None else [])]
        for background in pending:
            background.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("broker_stopped")

    async def wait_ready(self, timeout: float) -> bool:
        await wait_event(self._ready_event, timeout)
        return self.ready

    async def _run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            try:
                reason, delay, reached_ready = await self._round()
            except Exception as exc:  # a bug must not end reconnecting for the process's life
                log.exception("broker_session_failed")
                reason, delay, reached_ready = f"internal error: {type(exc).__name__}", None, False
                self.last_error = reason
                self._set_not_ready(reason)
            if self._stop_event.is_set():
                break
            failures = 0 if reached_ready else failures
            if delay is None:
                delay = self._backoff(failures)
                failures += 1
            log.warning("broker_disconnected", reason=reason, reconnect_in=round(delay, 3))
            await wait_event(self._stop_event, delay)

    async def _round(self) -> tuple[str, float | None, bool]:
        """One connection's life: (why it ended, the delay it imposes or None, was it ready)."""
        conn = self._new_connection()
        delay: float | None = None
        keepers: list[asyncio.Task[None]] = []
        reason = "connection closed"
        reached_ready = False
        try:
            await conn.open(self.settings.connect_timeout)
            log.info("broker_connected", host=self.settings.host, port=self.settings.port)
            keepers.append(asyncio.create_task(self._keep_alive(conn)))
            await self._setup(conn)
            reached_ready = True
            keepers.append(asyncio.create_task(self._keep_tokens(conn)))
            reason = await asyncio.shield(conn.closed)
        except BrokerAuthError as exc:
            reason = f"authorization failed: {exc}"
            log.error("broker_auth_failed", code=exc.code, description=exc.description,
                      retry_in=self.settings.auth_failure_backoff)
            delay = self.settings.auth_failure_backoff
            self.last_error = reason
            conn.close(reason)
        except BrokerError as exc:
            reason = str(exc)
            self.last_error = reason
            conn.close(reason, abort=True)
        finally:
            for keeper in keepers:
                keeper.cancel()
            if not conn.closed.done():
                conn.close(reason, abort=True)
            self._set_not_ready(reason)
        if conn.is_open:
            await asyncio.wait({conn.closed}, timeout=2.0)
        return reason, delay, reached_ready

    def _backoff(self, failures: int) -> float:
        base = min(self.settings.reconnect_max, self.settings.reconnect_base * 2**failures)
        return base * (0.5 + self._rng.random() / 2)  # "equal jitter": at least half the step

    def _new_connection(self) -> Connection:
        s = self.settings
        self.conn = Connection(
            host=s.host,
            port=s.port,
            ca_file=s.ca_file,
            on_message=self._on_message,
            next_msg_id=self._next_msg_id,
            clock=s.clock,
            pacer=Pacer(s.requests_per_second, s.historical_per_second),
            request_timeout=s.request_timeout,
            max_queue_wait=s.max_queue_wait,
            event_types=EVENT_TYPES,
        )
        return self.conn

    def _next_msg_id(self) -> str:
        # A per-client prefix: events pushed to us can carry other connections' ids.
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter}"

    # --- setup ----------------------------------------------------------------------------

    async def _setup(self, conn: Connection) -> None:
        s = self.settings
        await self.call(conn, P.ProtoOAApplicationAuthReq(clientId=s.client_id, clientSecret=s.client_secret),
                        P.ProtoOAApplicationAuthRes)
        log.info("broker_app_authorized")
        await self._authorize_account(conn, check_list=s.check_account_list)
        await self._load_symbols(conn)
        await self._load_account(conn)
        self._set_ready()

    async def _authorize_account(self, conn: Connection, check_list: bool) -> None:
        account_id = self.settings.account_id
        for attempt in (1, 2):
            async with self._token_lock:
                token = self._access_token
            try:
                if check_list:
                    await self._check_account_list(conn, token)
                await self.call(conn, P.ProtoOAAccountAuthReq(ctidTraderAccountId=account_id, accessToken=token),
                                P.ProtoOAAccountAuthRes)
            except BrokerRejected as exc:
                if exc.code in ALREADY_AUTHORIZED:
                    break
                if exc.code in TOKEN_ERRORS and attempt == 1:
                    log.warning("broker_token_rejected", code=exc.code)
                    await self.refresh(conn, stale_token=token)
                    continue
                raise
            break
        log.info("broker_account_authorized", account_id=account_id)

    async def _check_account_list(self, conn: Connection, token: str) -> None:
        res = await self.call(conn, P.ProtoOAGetAccountListByAccessTokenReq(accessToken=token),
                              P.ProtoOAGetAccountListByAccessTokenRes)
        accounts = {a.ctidTraderAccountId: a for a in res.ctidTraderAccount}
        account_id = self.settings.account_id
        if account_id not in accounts:
            raise BrokerAuthError(
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                f"account {account_id} is not among the token's accounts {sorted(accounts)}",
            )
        if res.HasField("permissionScope") and res.permissionScope != protos.model.SCOPE_TRADE:
            raise BrokerAuthError("ACCOUNT_NOT_AUTHORIZED", "the access token has view scope only, not trading")
        self._is_live = accounts[account_id].isLive

    async def _load_symbols(self, conn: Connection) -> None:
        account_id = self.settings.account_id
        light_res, asset_res = await asyncio.gather(
            self.call(conn, P.ProtoOASymbolsListReq(ctidTraderAccountId=account_id), P.ProtoOASymbolsListRes),
            self.call(conn, P.ProtoOAAssetListReq(ctidTraderAccountId=account_id), P.ProtoOAAssetListRes),
        )
        self._asset_names = {a.assetId: a.name for a in asset_res.asset}
        light = {s.symbolId: s for s in light_res.symbol}
        ids = list(light)
        answers = await asyncio.gather(*(
            self.call(conn, P.ProtoOASymbolByIdReq(ctidTraderAccountId=account_id, symbolId=ids[i : i + SYMBOL_CHUNK]),
                      P.ProtoOASymbolByIdRes)
            for i in range(0, len(ids), SYMBOL_CHUNK)
        ))
        self.state.set_symbols(
            translate.symbol_info(light[full.symbolId], full, self._asset_names)
            for res in answers
            for full in res.symbol
            if full.symbolId in light
        )
        log.info("broker_symbols_loaded", symbols=len(self.state.symbols), assets=len(self._asset_names))

    async def _load_account(self, conn: Connection) -> None:
        """Trader, Reconcile and spot subscriptions: what an account session needs again."""
        account_id = self.settings.account_id
        trader = await self.call(conn, P.ProtoOATraderReq(ctidTraderAccountId=account_id), P.ProtoOATraderRes)
        self.state.account = translate.account_info(trader.trader, self._asset_names, self._is_live)
        await self.reconcile(conn)
        self._subscribed.clear()
        await self.subscribe_spots(conn, self._wanted_spots | self.state.symbol_ids_in_use())

    async def reconcile(self, conn: Connection) -> None:
        res = await self.call(conn, P.ProtoOAReconcileReq(ctidTraderAccountId=self.settings.account_id),
                              P.ProtoOAReconcileRes)
        self.state.apply_reconcile(res)
        log.info("broker_reconciled", positions=len(self.state.positions), orders=len(self.state.orders))

    async def subscribe_spots(self, conn: Connection, symbol_ids: Iterable[int]) -> None:
        """Subscribe to the spots of known symbols not yet subscribed on this session."""
        new = sorted({i for i in symbol_ids if i in self.state.symbols} - self._subscribed)
        if not new:
            return
        self._subscribed.update(new)
        try:
            await self.call(conn, P.ProtoOASubscribeSpotsReq(ctidTraderAccountId=self.settings.account_id, symbolId=new),
                            P.ProtoOASubscribeSpotsRes)
        except BrokerRejected as exc:
            if exc.code != "ALREADY_SUBSCRIBED":
                self._subscribed.difference_update(new)
                log.warning("broker_spot_subscription_failed", symbol_ids=new, code=exc.code)
        except BrokerError:
            self._subscribed.difference_update(new)
            raise

    async def want_spots(self, symbol_ids: Iterable[int]) -> None:
        """Keep these symbols' quotes (now if ready, and after every reconnect)."""
        self._wanted_spots.update(symbol_ids)
        conn = self.conn
        if self.ready and conn is not None and conn.is_open:
            try:
                await self.subscribe_spots(conn, self._wanted_spots)
            except BrokerError as exc:  # the next session subscribes again
                log.warning("broker_spot_subscription_failed", error=str(exc))

    def _set_ready(self) -> None:
        self.ready = True
        self.last_error = None
        self._ready_event.set()
        log.info("broker_ready", symbols=len(self.state.symbols), positions=len(self.state.positions),
                 orders=len(self.state.orders))
        self._emit(ConnectionChange(ready=True, reason="ready"))

    def _set_not_ready(self, reason: str) -> None:
        self._ready_event.clear()
        if self.ready:
            self.ready = False
            log.warning("broker_not_ready", reason=reason)
            self._emit(ConnectionChange(ready=False, reason=reason))

    # --- requests -------------------------------------------------------------------------

    async def call(self, conn: Connection, message: Message, answer: type[R], timeout: float | None = None) -> R:
        """Send ``message`` and return its answer of type ``answer``; error replies raise.

        ``timeout`` (default ``request_timeout``) counts from when the frame leaves the pacer."""
        exchange = conn.request(message, timeout)
        try:
            while True:
                routed = await exchange.next()
                raise_if_error(routed)
                if isinstance(routed.message, answer):
                    return routed.message
        finally:
            conn.forget(exchange)

    def trading_connection(self) -> Connection:
        """The connection of a ready session, or ``BrokerUnavailable``."""
        conn = self.conn
        if not self.ready or conn is None or not conn.is_open:
            raise BrokerUnavailable(f"broker session not ready ({self.last_error or 'connecting'})")
        return conn

    # --- tokens ---------------------------------------------------------------------------

    async def refresh(self, conn: Connection, stale_token: str | None = None) -> None:
        """RefreshTokenReq, then ``on_tokens`` (awaited) before anyone uses the new pair."""
        async with self._token_lock:
            if stale_token is not None and stale_token != self._access_token:
                return  # refreshed meanwhile by someone else
            try:
                res = await self.call(conn, P.ProtoOARefreshTokenReq(refreshToken=self._refresh_token),
                                      P.ProtoOARefreshTokenRes)
            except BrokerRejected as exc:
                raise BrokerAuthError(exc.code, f"token refresh failed: {exc.description}") from exc
            except BrokerTimeout:
                # The server may have rotated the pair and the answer is lost: the old refresh
                # token is then dead too, and only a new authorization by the user helps.
                log.error("broker_token_refresh_unanswered")
                raise
            self._access_token, self._refresh_token = res.accessToken, res.refreshToken
            self.token_expires_at = time.time() + res.expiresIn
            log.info("broker_tokens_refreshed", expires_in=res.expiresIn)
            if self._on_tokens is None:
                log.warning("broker_tokens_not_persisted", reason="no on_tokens callback")
                return
            try:
                await self._on_tokens(res.accessToken, res.refreshToken, res.expiresIn)
            except Exception as exc:  # the old pair is dead: keep going with the new one
                self.last_error = f"new tokens could not be saved ({type(exc).__name__})"
                log.error("broker_tokens_not_persisted", error=type(exc).__name__)

    async def refresh_and_reauthorize(self) -> None:
        conn = self.conn
        if conn is None or not conn.is_open:
            raise BrokerUnavailable("not connected: cannot refresh the tokens")
        await self.refresh(conn)
        await self.reauthorize(conn, "tokens refreshed")

    async def reauthorize(self, conn: Connection, reason: str) -> None:
        """Authorize the account again on this connection and reload its state (one at a time)."""
        if self._reauth is None or self._reauth.done():
            self._set_not_ready(reason)
            self._reauth = asyncio.create_task(self._reauthorize(conn, reason))
        await asyncio.shield(self._reauth)

    async def _reauthorize(self, conn: Connection, reason: str) -> None:
        log.info("broker_reauthorizing", reason=reason)
        try:
            await self._authorize_account(conn, check_list=False)
            await self._load_account(conn)
        except BrokerError as exc:
            log.warning("broker_reauthorization_failed", error=str(exc))
            conn.close(f"re-authorization failed: {exc}", abort=True)
            return
        if conn is self.conn and conn.is_open:
            self._set_ready()

    async def _recover_token(self, conn: Connection, stale_token: str) -> None:
        self._set_not_ready("access token refused")
        try:
            await self.refresh(conn, stale_token=stale_token)
        except BrokerAuthError as exc:
            self.last_error = f"authorization failed: {exc}"
            conn.close(self.last_error, abort=True)
            return
        await self.reauthorize(conn, "tokens refreshed after the server refused the token")

    async def _keep_tokens(self, conn: Connection) -> None:
        """Refresh ``refresh_ahead`` seconds before the access token expires, when that is known."""
        while conn.is_open:
            expires_at = self.token_expires_at
            if expires_at is None:
                await asyncio.wait({conn.closed}, timeout=3600)
                continue
            due = expires_at - self.settings.refresh_ahead - time.time()
            if due > 0:
                await asyncio.wait({conn.closed}, timeout=min(due, 3600))
                continue
            try:
                await self.refresh(conn, stale_token=self._access_token)
                await self.reauthorize(conn, "tokens refreshed ahead of expiry")
            except BrokerError as exc:
                log.warning("broker_token_refresh_failed", error=str(exc))
                await asyncio.wait({conn.closed}, timeout=60)

    # --- keep-alive -----------------------------------------------------------------------

    async def _keep_alive(self, conn: Connection) -> None:
        """Heartbeat after ``heartbeat_interval`` of outbound silence; probe, then drop, a
        link that has been silent inbound for 2/3, then all, of ``silence_limit``."""
        interval = self.settings.heartbeat_interval
        limit = self.settings.silence_limit or 3 * interval
        probe_after = limit * 2 / 3
        clock = self.settings.clock
        probed_for: float | None = None  # the last_received the pending probe was sent for
        while conn.is_open:
            now = clock()
            silent = now - conn.last_received
            if silent >= limit:
                log.warning("broker_link_silent", seconds=round(silent, 1))
                conn.close(f"no data from the server for {silent:.1f}s", abort=True)
                return
            if silent >= probe_after and probed_for != conn.last_received:
                probed_for = conn.last_received
                conn.forget(conn.request(P.ProtoOAVersionReq()))  # any answer proves the link
            if now - conn.last_sent >= interval:
                conn.send_heartbeat()
            next_probe = conn.last_received + (limit if probed_for == conn.last_received else probe_after)
            wake = min(conn.last_sent + interval, next_probe)
            await asyncio.wait({conn.closed}, timeout=max(0.005, wake - clock()))

    # --- inbound --------------------------------------------------------------------------

    def _on_message(self, conn: Connection, msg_id: str, payload_type: int, message: Message) -> None:
        if conn is not self.conn:
            return
        execution: Execution | None = None
        account_id = self.settings.account_id
        if isinstance(message, P.ProtoOASpotEvent):
            self.state.apply_spot(message)
            return
        if isinstance(message, P.ProtoOAExecutionEvent):
            if message.ctidTraderAccountId != account_id:
                return
            execution = self.state.apply_execution(message)
            self._follow_symbols(conn, message)
        elif isinstance(message, P.ProtoOATrailingSLChangedEvent):
            self.state.apply_trailing_stop(message)
        elif isinstance(message, ERROR_TYPES) and message.errorCode in TOKEN_ERRORS and self.ready:
            # The token died under a live session (expired, revoked): refresh and re-authorize;
            # the refused request itself was not executed.
            log.warning("broker_token_rejected", code=message.errorCode)
            self._spawn(self._recover_token(conn, self._access_token))
        elif isinstance(message, P.ProtoOAClientDisconnectEvent):
            log.warning("broker_client_disconnect_event", reason=message.reason)
            conn.close(f"server ended the session: {message.reason or 'no reason given'}", abort=True)
        elif isinstance(message, P.ProtoOAAccountDisconnectEvent):
            if message.ctidTraderAccountId == account_id:
                log.warning("broker_account_disconnect_event")
                self._spawn(self.reauthorize(conn, "account session ended by the server"))
        elif isinstance(message, P.ProtoOAAccountsTokenInvalidatedEvent):
            if account_id in message.ctidTraderAccountIds:
                log.warning("broker_token_invalidated_event", reason=message.reason)
                self._spawn(self.reauthorize(conn, f"token invalidated: {message.reason}"))
        self._route(conn, msg_id, Routed(payload_type, message, execution))
        if execution is not None:
            self._emit(execution)

    def _route(self, conn: Connection, msg_id: str, routed: Routed) -> None:
        exchange = conn.exchanges.get(msg_id) if msg_id else None
        if exchange is not None:
            exchange.deliver(routed)
            return
        message = routed.message
        if isinstance(message, P.ProtoOAExecutionEvent):
            order_id = message.order.orderId if message.HasField("order") else None
            position_id = message.position.positionId if message.HasField("position") else None
        elif isinstance(message, P.ProtoOAOrderErrorEvent):
            order_id, position_id = message.orderId or None, message.positionId or None
        else:
            return
        for candidate in list(conn.exchanges.values()):
            if candidate.matches(order_id, position_id):
                candidate.deliver(routed)

    def _follow_symbols(self, conn: Connection, event: Message) -> None:
        """Quotes for every symbol with a position or order, also ones opened elsewhere.

        Only an event's own order or position can put a symbol in use: when their symbols are
        subscribed already, nothing is scanned (all positions and orders, per event, before).
        """
        if not self.ready:
            return
        subscribed = self._subscribed
        touched = [getattr(event, name).tradeData.symbolId for name in ("order", "position") if event.HasField(name)]
        if all(symbol_id in subscribed for symbol_id in touched):
            return
        missing = self.state.symbol_ids_in_use() - subscribed
        if missing:
            self._spawn(self.subscribe_spots(conn, missing))

    # --- subscribers ----------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: BrokerEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("broker_subscriber_failed", event=type(event).__name__)

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except BrokerError as exc:
                log.warning("broker_background_failed", error=str(exc))

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = ["ClientSettings", "Session", "Subscriber", "TokenCallback", "error_from", "raise_if_error"]
