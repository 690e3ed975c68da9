"""Operator commands that talk to Spotware directly: ``auth``, ``accounts``, ``symbols``.

They read the same ``--config`` as the daemon and need no running daemon: ``auth`` stores the
tokens in the daemon's database (contract: Tokens), ``accounts`` lists what the token may
trade (to pick ``ctrader.account_id``), ``symbols`` lists the broker's names with the sizes to
put in alerts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Callable
from typing import Any

from pipsync_lite import broker_query, console, logs, oauth, tokens
from pipsync_lite.config import Config
from pipsync_lite.errors import BrokerError
from pipsync_lite.store import Store

AddConfig = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def register(sub: Any, with_config: AddConfig) -> None:
    auth = with_config(sub.add_parser("auth", help="authorize the cTrader account (OAuth) and store the tokens"))
    auth.add_argument("code", nargs="?", help="the authorization code, or the whole URL the browser was sent to")
    auth.add_argument("--listen", action="store_true", help="catch the browser's redirect on the redirect URI's localhost port")
    auth.add_argument("--timeout", type=float, default=300.0, help="seconds to wait with --listen (default: %(default)s)")
    auth.set_defaults(operator=cmd_auth)

    accounts = with_config(sub.add_parser("accounts", help="the accounts the token can trade (to pick ctrader.account_id)"))
    accounts.add_argument("--json", action="store_true", help="print JSON instead of a table")
    accounts.set_defaults(operator=cmd_accounts)

    symbols = with_config(sub.add_parser("symbols", help="the broker's symbols with lot size, min/step volume, digits"))
    symbols.add_argument("filter", nargs="?", help="only names or descriptions containing this text")
    symbols.add_argument("--json", action="store_true", help="print JSON instead of a table")
    symbols.set_defaults(operator=cmd_symbols)


def _quiet_logs(config: Config) -> None:
    """Commands print for people; the library's own log lines only when something is wrong."""
    logs.configure("error", "console", config.secrets(), stream=sys.stderr)
    logging.getLogger("twisted").setLevel(logging.ERROR)


# -- auth ----------------------------------------------------------------------------------


def cmd_auth(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        _quiet_logs(config)
        print("1. Open this address, log in with your cTrader ID and allow access:\n")
        print(f"   {oauth.authorization_url(config)}\n", flush=True)
        try:
            if args.code:
                code = oauth.code_from(args.code)
            elif args.listen:
                print(f"2. Waiting for the browser to come back to {config.ctrader.oauth.redirect_uri} ...", flush=True)
                code = oauth.catch_redirect(config.ctrader.oauth.redirect_uri, args.timeout)
            else:
                print("2. The browser then goes to your redirect URI with ?code=... in its address.")
                pasted = input("   Paste that address (or the code) here: ")
                code = oauth.code_from(pasted)
            grant = oauth.exchange_code(config, code)
        except oauth.OAuthError as err:
            raise console.Exit(console.REFUSED, f"auth: {err}") from None
        except EOFError:
            raise console.Exit(console.USAGE, "auth: no code given") from None
        asyncio.run(_store(config, grant))
        days = f"{grant.expires_in // 86400} days" if grant.expires_in else "an unknown time"
        print(f"\nTokens stored in {config.storage.path} (the access token is valid for {days};")
        print("the daemon refreshes it a day before it runs out). Next:")
        print(f"  pipsync-lite accounts -c {args.config}   # pick the account, set ctrader.account_id")
        print(f"  pipsync-lite symbols -c {args.config}    # the names to use in alerts")
        print("  then (re)start the daemon so it uses the new tokens, e.g. systemctl restart pipsync-lite.")
        print("ctrader.access_token / refresh_token may now be left out of the YAML.")
        return console.OK

    return console.run(body)


async def _store(config: Config, grant: oauth.Grant) -> None:
    store = Store(config.storage.path)
    await store.open()
    try:
        await tokens.save(store, config, grant.access_token, grant.refresh_token, grant.expires_in)
    finally:
        await store.close()


# -- accounts ------------------------------------------------------------------------------


def cmd_accounts(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        _quiet_logs(config)
        try:
            can_trade, accounts = asyncio.run(broker_query.list_accounts(config))
        except BrokerError as err:
            raise console.Exit(console.REFUSED, f"accounts: the broker refused: {err}") from None
        if args.json:
            console.dump({"can_trade": can_trade, "accounts": [dataclasses.asdict(a) for a in accounts]})
            return console.OK
        configured = config.ctrader.account_id
        console.table(
            ["", "ACCOUNT ID", "TYPE", "LOGIN", "BROKER"],
            [["*" if a.account_id == configured else "", a.account_id, "live" if a.is_live else "demo", a.login, a.broker]
             for a in accounts],
        )
        if not can_trade:
            print("\nThis token has view access only: authorize again with the trading scope (pipsync-lite auth).")
        if configured not in {a.account_id for a in accounts}:
            print(f"\nctrader.account_id {configured} is not among them: set it to one of the ids above.")
        else:
            print("\n* = ctrader.account_id. A live account needs ctrader.environment: live, a demo one demo.")
        return console.OK

    return console.run(body)


# -- symbols -------------------------------------------------------------------------------


def cmd_symbols(args: argparse.Namespace) -> int:
    def body() -> int:
        config = console.config_or_exit(args.config)
        _quiet_logs(config)
        try:
            rows = asyncio.run(broker_query.list_symbols(config))
        except BrokerError as err:
            raise console.Exit(console.REFUSED, f"symbols: {err}") from None
        if args.filter:
            needle = args.filter.lower()
            rows = [r for r in rows if needle in r.name.lower() or needle in r.description.lower()]
        if args.json:
            console.dump([{k: str(v) if not isinstance(v, int | str) else v for k, v in dataclasses.asdict(r).items()}
                          for r in rows])
            return console.OK
        console.table(
            ["SYMBOL", "LOT SIZE", "MIN LOTS", "STEP LOTS", "MAX LOTS", "DIGITS", "PIP", "DESCRIPTION"],
            [[r.name, _plain(r.lot_units), _plain(r.min_lots), _plain(r.step_lots), _plain(r.max_lots), r.digits,
              _pip(r.pip_position), r.description + ("" if r.trading_mode == "enabled" else f" [{r.trading_mode}]")]
             for r in rows],
        )
        print("\nLOT SIZE is units of the base asset per lot; alerts give `lots` in steps of STEP LOTS.")
        return console.OK

    return console.run(body)


def _plain(value: Any) -> str:
    return f"{value.normalize():f}" if hasattr(value, "normalize") else str(value)


def _pip(position: int) -> str:
    return f"{10 ** -position:.{position}f}" if position > 0 else str(10 ** -position)
