"""One-off broker sessions for the operator's commands: the token's accounts, the account's symbols.

``accounts`` needs no account id (it is how the user finds one): a bare connection does
ApplicationAuth and GetAccountListByAccessToken. ``symbols`` runs a full session for the
configured account (the same :class:`CTraderClient` the daemon uses) and reads its symbol table.
A pair refreshed on the way is saved to the database like the daemon does.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from dataclasses import dataclass
from decimal import Decimal

from google.protobuf.message import Message

from pipsync_lite import protos, tokens
from pipsync_lite.config import Config
from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.bridge import install_reactor
from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.connection import Connection, Routed
from pipsync_lite.ctrader.protocol import Pacer
from pipsync_lite.ctrader.session import raise_if_error
from pipsync_lite.ctrader.settings import ClientSettings
from pipsync_lite.errors import BrokerError, BrokerUnavailable, ConfigError
from pipsync_lite.store import Store

P = protos.messages


@dataclass(frozen=True, slots=True)
class TradingAccount:
    account_id: int
    is_live: bool
    login: int
    broker: str


@dataclass(frozen=True, slots=True)
class SymbolRow:
    name: str
    symbol_id: int
    description: str
    digits: int
    pip_position: int
    lot_units: Decimal  # units of the base asset in one lot (EURUSD: 100000)
    min_lots: Decimal
    step_lots: Decimal
    max_lots: Decimal
    trading_mode: str


async def token_pair(config: Config) -> tokens.TokenPair:
    """The pair the daemon would use (without marking the YAML pair as read)."""
    store = Store(config.storage.path)
    await store.open()
    try:
        pair = await tokens.choose(store, config, mark_read=False)
    finally:
        await store.close()
    if pair is None:
        raise ConfigError(["ctrader.access_token: no access token in the YAML or the database: run `pipsync-lite auth`"])
    return pair


async def list_accounts(config: Config, timeout: float = 20.0) -> tuple[bool, list[TradingAccount]]:
    """(token can trade, accounts) for the configured application and token."""
    install_reactor(asyncio.get_running_loop())
    pair = await token_pair(config)
    c = config.ctrader
    prefix = "q" + "".join(random.choices(string.ascii_lowercase, k=3)) + "-"
    counter = iter(range(1, 1_000_000))

    def route(conn: Connection, msg_id: str, payload_type: int, message: Message) -> None:
        exchange = conn.exchanges.get(msg_id) if msg_id else None
        if exchange is not None:
            exchange.deliver(Routed(payload_type, message))

    conn = Connection(
        host=c.resolved_host, port=c.port, ca_file=c.ca_file, on_message=route,
        next_msg_id=lambda: f"{prefix}{next(counter)}", clock=time.monotonic, pacer=Pacer(50, 5),
    )
    await conn.open(timeout)
    try:
        await _call(conn, P.ProtoOAApplicationAuthReq(clientId=c.client_id, clientSecret=c.client_secret.get_secret_value()),
                    P.ProtoOAApplicationAuthRes, timeout)
        res = await _call(conn, P.ProtoOAGetAccountListByAccessTokenReq(accessToken=pair.access_token),
                          P.ProtoOAGetAccountListByAccessTokenRes, timeout)
    finally:
        conn.close("done")
    can_trade = not res.HasField("permissionScope") or res.permissionScope == protos.model.SCOPE_TRADE
    accounts = [
        TradingAccount(a.ctidTraderAccountId, a.isLive, a.traderLogin, _broker_title(a))
        for a in res.ctidTraderAccount
    ]
    return can_trade, sorted(accounts, key=lambda a: a.account_id)


def _broker_title(account: Message) -> str:
    # brokerTitleShort is newer than the protobufs ctrader-open-api 0.9.2 ships
    if "brokerTitleShort" in account.DESCRIPTOR.fields_by_name:
        return str(account.brokerTitleShort)
    return ""


async def _call(conn: Connection, message: Message, answer: type[Message], timeout: float) -> Message:
    exchange = conn.request(message)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            routed = await exchange.next(deadline)
            raise_if_error(routed)
            if isinstance(routed.message, answer):
                return routed.message
    finally:
        conn.forget(exchange)


async def list_symbols(config: Config, timeout: float = 30.0) -> list[SymbolRow]:
    """Every symbol of the configured account, by name."""
    install_reactor(asyncio.get_running_loop())
    pair = await token_pair(config)
    c = config.ctrader
    store = Store(config.storage.path)

    async def save(access: str, refresh: str, expires_in: int) -> None:
        await store.open()
        try:
            await tokens.save(store, config, access, refresh, expires_in)
        finally:
            await store.close()

    settings = ClientSettings(
        host=c.resolved_host, port=c.port, ca_file=c.ca_file, client_id=c.client_id,
        client_secret=c.client_secret.get_secret_value(), access_token=pair.access_token,
        refresh_token=pair.refresh_token, account_id=c.account_id, request_timeout=float(c.request_timeout_seconds),
        access_token_expires_at=None,  # never refresh ahead from a command: the daemon does
        reconnect_max=2.0,
    )
    client = CTraderClient(settings, on_tokens=save)
    await client.start()
    try:
        if not await client.wait_ready(timeout):
            raise BrokerUnavailable(client.last_error or f"not ready within {int(timeout)} s")
        rows = []
        for name in client.symbol_names():
            info = client.symbol(name)
            if info is None:
                continue
            rows.append(
                SymbolRow(
                    name=info.name, symbol_id=info.symbol_id, description=info.description, digits=info.digits,
                    pip_position=info.pip_position, lot_units=Decimal(info.lot_size) / 100,
                    min_lots=units.volume_to_lots(info.min_volume, info),
                    step_lots=units.volume_to_lots(info.step_volume, info),
                    max_lots=units.volume_to_lots(info.max_volume, info),
                    trading_mode=info.trading_mode,
                )
            )
        return rows
    finally:
        await client.stop()


__all__ = ["BrokerError", "SymbolRow", "TradingAccount", "list_accounts", "list_symbols", "token_pair"]
