"""The Simulator: a cTrader Open API server on asyncio streams, and the API tests drive it with."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import structlog

from pipsync_lite.simulator import tls
from pipsync_lite.simulator.account import Account, AccountType, from_cents
from pipsync_lite.simulator.book import Book, IdSource
from pipsync_lite.simulator.dispatch import Received, Router
from pipsync_lite.simulator.engine import Engine
from pipsync_lite.simulator.faults import Faults
from pipsync_lite.simulator.feed import PriceFeed, SpotChange
from pipsync_lite.simulator.hub import Hub, LinkSettings
from pipsync_lite.simulator.instruments import Catalogue, Instrument
from pipsync_lite.simulator.market import MarketHandlers
from pipsync_lite.simulator.money import Pricing
from pipsync_lite.simulator.orders import OrderDesk
from pipsync_lite.simulator.session import SessionHandlers
from pipsync_lite.simulator.tokens import SimCredentials, TokenBook
from pipsync_lite.simulator.trading import TradingHandlers
from pipsync_lite.simulator.views import (
    DealView,
    OrderView,
    PositionView,
    deal_view,
    order_view,
    position_view,
)
from pipsync_lite.waits import wait_event

log = structlog.get_logger(__name__)

T = TypeVar("T")
PriceLike = Decimal | str | int


class Simulator:
    """A cTrader demo account behind the real Open API wire protocol.

    ``tick_interval=None`` means prices move only when a test calls ``set_price`` or
    ``step``; otherwise the seeded random walk advances one tick every ``tick_interval``
    seconds. Everything random (prices, ids, credentials) derives from ``seed``.
    """

    def __init__(
        self,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: Path | str | None = None,
        account_type: str = "hedged",
        tick_interval: float | None = None,
        credentials: SimCredentials | None = None,
        *,
        balance: Decimal = Decimal(10000),
        leverage: int = 100,
        heartbeat_interval: float = 10.0,
        # The real idle timeout is unrecorded; 30 s is the schema's "idle for more than
        # 30 s" and lets OpenApiPy (heartbeat after 20 s of silence) stay connected.
        idle_timeout: float = 30.0,
        # Requests are a few hundred bytes; 1 MiB refuses garbage lengths long before
        # they cost memory (the real server's limit is unrecorded).
        max_frame: int = 1 << 20,
        requests_per_second: int = 50,
        historical_requests_per_second: int = 5,
        tls_files: tls.TlsFiles | None = None,
        refresh_ends_sessions: bool = True,
    ) -> None:
        self.seed = seed
        self.host = host
        self.port = port
        self.tick_interval = tick_interval
        #: When a refresh rotates the tokens, end the account sessions authorized with the
        #: old access token (AccountsTokenInvalidatedEvent, reason "token was refreshed").
        #: The stricter choice: a client must then re-authorize with the new token.
        self.refresh_ends_sessions = refresh_ends_sessions
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._own_cert_dir: Path | None = None
        self._tls_files = tls_files
        creds = credentials or SimCredentials.from_seed(seed)
        self.tokens = TokenBook(creds, seed)
        self.catalogue = Catalogue()
        self.feed = PriceFeed(self.catalogue.instruments, seed)
        self.account = Account.create(creds.account_id, seed, AccountType(account_type),
                                      balance, leverage)
        self.faults = Faults()
        self.pricing = Pricing(self.catalogue, self.feed, self.account.deposit_asset)
        self.engine = Engine(self.account, self.catalogue, self.pricing, Book(IdSource(seed)),
                             self.market_open, _now_ms)
        self.desk = OrderDesk(self.engine, self.faults)
        self.requests: list[Received] = []
        self._closed_markets: set[int] = set()
        self._server: asyncio.Server | None = None
        self._background: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._expiry_wake = asyncio.Event()
        self._router = Router(self.tokens)
        SessionHandlers(self).register(self._router)
        MarketHandlers(self).register(self._router)
        TradingHandlers(self).register(self._router)
        self.hub = Hub(self._router, self.faults, LinkSettings(
            heartbeat_interval, idle_timeout, max_frame, requests_per_second,
            historical_requests_per_second), self.requests, self._notify)

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        if self._tls_files is None:
            if self._cert_dir is None:
                self._own_cert_dir = Path(tempfile.mkdtemp(prefix="pipsync-sim-"))
                self._cert_dir = self._own_cert_dir
            self._tls_files = tls.generate(self._cert_dir)
        context = tls.server_context(self._tls_files)
        self._changed = asyncio.Event()
        self._expiry_wake = asyncio.Event()
        self._server = await asyncio.start_server(self.hub.accept, self.host, self.port,
                                                  ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.tick_interval is not None:
            self._background.append(asyncio.create_task(self._ticker(), name="sim-ticker"))
        self._background.append(asyncio.create_task(self._expiry_loop(), name="sim-expiry"))
        log.info("sim_started", host=self.host, port=self.port, seed=self.seed,
                 account_type=self.account.account_type.value)

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._server is not None:
            self._server.close()
        await self.hub.close_all()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._own_cert_dir is not None:
            shutil.rmtree(self._own_cert_dir, ignore_errors=True)
            self._own_cert_dir = None
        log.info("sim_stopped", port=self.port)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ca_file(self) -> Path:
        if self._tls_files is None:
            raise RuntimeError("the simulator has not started")
        return self._tls_files.ca_file

    @property
    def credentials(self) -> SimCredentials:
        """The current credentials (tokens change when a client refreshes them)."""
        return self.tokens.credentials

    @property
    def account_id(self) -> int:
        return self.account.account_id

    # ----------------------------------------------------------------- session knobs

    def expire_access_token(self) -> None:
        """The current access token expires: OA_AUTH_TOKEN_EXPIRED on its next use."""
        self.tokens.expire()
        log.info("sim_fault_token_expired")
        self._notify()

    def invalidate_access_token(self, refresh_too: bool = False) -> None:
        """Revoke the current access token: CH_ACCESS_TOKEN_INVALID on its next use, and
        AccountsTokenInvalidatedEvent to every session authorized with it. The refresh
        token keeps working unless ``refresh_too`` (then only re-authorizing helps)."""
        token = self.tokens.invalidate(refresh_too=refresh_too)
        log.info("sim_fault_token_invalidated")
        self.hub.end_token_sessions(token, "Access token was revoked")

    def send_client_disconnect(self, reason: str = "Server is restarting",
                               connection_id: int | None = None) -> None:
        """ProtoOAClientDisconnectEvent, then close, as when the server cancels the app."""
        self.hub.disconnect_clients(reason, connection_id)

    def send_account_disconnect(self, connection_id: int | None = None) -> None:
        """ProtoOAAccountDisconnectEvent to the account's sessions, which then end."""
        self.hub.disconnect_account(self.account.account_id, connection_id)

    def drop_connections(self) -> None:
        """Drop every client connection at once, as a network failure would."""
        for conn in self.hub.connections():
            conn.abort()

    def clear_faults(self) -> None:
        """Turn every fault knob off and reopen every market."""
        self.faults.clear()
        self.open_market(None)

    # ----------------------------------------------------------------- prices

    def instrument(self, symbol: str | int) -> Instrument:
        return self.catalogue.resolve(symbol)

    def quote(self, symbol: str | int) -> tuple[Decimal, Decimal]:
        """(bid, ask) of a symbol now."""
        inst = self.instrument(symbol)
        q = self.feed.quote(inst.symbol_id)
        return q.bid_price(inst), q.ask_price(inst)

    def quotes(self) -> dict[str, tuple[Decimal, Decimal]]:
        return {i.name: self.quote(i.symbol_id) for i in self.catalogue.instruments}

    def set_price(self, symbol: str | int, bid: PriceLike | None = None,
                  ask: PriceLike | None = None) -> None:
        """Set one or both sides exactly; subscribers get a SpotEvent with what changed,
        and pending orders, stops and take-profits react."""
        inst = self.instrument(symbol)
        change = self.feed.set(inst, _price(bid), _price(ask))
        if change is not None:
            self._on_price_changes([change])

    def step(self, n: int = 1) -> None:
        """Advance the random walk ``n`` ticks (closed markets stay still)."""
        open_ids = {i.symbol_id for i in self.catalogue.instruments} - self._closed_markets
        for _ in range(n):
            changes = self.feed.tick(open_ids)
            if changes:
                self._on_price_changes(changes)

    def _on_price_changes(self, changes: list[SpotChange]) -> None:
        self.hub.push_spots(changes)
        self._react({c.symbol_id for c in changes})

    def _react(self, symbol_ids: set[int]) -> None:
        """Let pending orders, stops and take-profits act on the current prices."""
        events = self.engine.on_quotes(symbol_ids)
        if events:
            self.hub.publish(self.account.account_id, events)
        self._notify()

    def market_open(self, symbol_id: int) -> bool:
        return symbol_id not in self._closed_markets

    def close_market(self, symbol: str | int | None = None) -> None:
        """Close one market (or all): orders get MARKET_CLOSED, nothing triggers, the
        random walk leaves it alone."""
        if symbol is None:
            self._closed_markets = {i.symbol_id for i in self.catalogue.instruments}
        else:
            self._closed_markets.add(self.instrument(symbol).symbol_id)

    def open_market(self, symbol: str | int | None = None) -> None:
        reopened = (set(self._closed_markets) if symbol is None
                    else {self.instrument(symbol).symbol_id} & self._closed_markets)
        self._closed_markets -= reopened
        if reopened:
            self._react(reopened)  # what was crossed while closed acts on reopening

    async def _expiry_loop(self) -> None:
        while True:
            wake = self._expiry_wake = asyncio.Event()
            due = self.engine.next_expiry_ms()
            timeout = None if due is None else max(0.0, due / 1000 - time.time())
            await wait_event(wake, timeout)
            events = self.engine.expire_due(_now_ms())
            if events:
                self.hub.publish(self.account.account_id, events)

    async def _ticker(self) -> None:
        assert self.tick_interval is not None
        while True:
            await asyncio.sleep(self.tick_interval)
            self.step(1)

    # ----------------------------------------------------------------- inspection

    @property
    def balance(self) -> Decimal:
        return from_cents(self.account.balance)

    def positions(self) -> list[PositionView]:
        """Open positions, oldest first."""
        book = self.engine.book
        return [position_view(p, self.catalogue) for _, p in sorted(book.positions.items())]

    def orders(self) -> list[OrderView]:
        """Live orders: pending ones and STOP_LOSS_TAKE_PROFIT protections."""
        book = self.engine.book
        return [order_view(o, self.catalogue) for _, o in sorted(book.orders.items())]

    def order(self, order_id: int) -> OrderView:
        """Any order ever seen (filled, cancelled, rejected ones too)."""
        return order_view(self.engine.book.archive[order_id], self.catalogue)

    def deals(self) -> list[DealView]:
        return [deal_view(d, self.catalogue) for d in self.engine.book.deals]

    @property
    def internal_errors(self) -> list[Exception]:
        """Exceptions request handlers raised (answered with UNKNOWN_ERROR): simulator bugs."""
        return self.hub.internal_errors

    @property
    def connection_ids(self) -> list[int]:
        return self.hub.connection_ids

    def requests_named(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.name == name]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                       what: str | None = None) -> T:
        """Wait until ``predicate()`` is truthy and return its value; TimeoutError after
        ``timeout`` seconds. Wakes on every simulator state change."""
        deadline = time.monotonic() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s: "
                                   f"{what or getattr(predicate, '__name__', predicate)}")
            try:
                # The short cap re-checks conditions on state the simulator cannot see
                # change (e.g. a predicate over the test's own objects).
                await asyncio.wait_for(changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass

    async def wait_for_request(self, name: str, predicate: Callable[[Received], Any] | None = None,
                               timeout: float = 5.0, since: int = 0) -> Received:
        """The first request named ``name`` (index >= ``since``) matching ``predicate``."""
        def find() -> Received | None:
            for record in self.requests[since:]:
                if record.name == name and (predicate is None or predicate(record)):
                    return record
            return None
        return await self.wait_for(find, timeout, what=f"request {name}")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        # Any change may have placed, amended or removed a GTD order: the expiry loop
        # recomputes its deadline (cheap, and simpler than tracking which changes matter).
        self._expiry_wake.set()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _price(value: PriceLike | float | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip text: 1.1 stays 1.1
    return Decimal(value)
