"""``pipsync-lite simulator``: run the Open API simulator standalone until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import structlog

from pipsync_lite.simulator.server import Simulator


def build_parser(prog: str = "pipsync-lite simulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the cTrader Open API simulator. Prints one JSON line "
        "with the address, the CA file and the credentials, then serves until stopped.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5035,
                        help="TCP port (default 5035, as the real server; 0 = any free port)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of prices, ids and credentials (default 1)")
    parser.add_argument("--cert-dir", type=Path, default=None,
                        help="where to write ca.pem/server.pem/server.key "
                        "(default: a temporary directory removed at exit)")
    parser.add_argument("--account-type", choices=("hedged", "netted"), default="hedged")
    parser.add_argument("--tick-interval", type=float, default=1.0,
                        help="seconds between random-walk ticks (default 1; 0 = prices "
                        "never move by themselves)")
    parser.add_argument("--balance", type=Decimal, default=Decimal("10000"),
                        help="starting balance in USD (default 10000)")
    return parser


async def serve_forever(sim: Simulator, out: TextIO | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Start ``sim``, print the connection JSON line, serve until SIGINT/SIGTERM (or
    ``stop`` is set), then stop cleanly."""
    out = out or sys.stdout
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await sim.start()
        creds = sim.credentials
        # The one place secrets are printed: this line is how a user (or the daemon's
        # `demo`) learns them. Logs never carry them.
        out.write(json.dumps({
            "host": sim.host, "port": sim.port, "ca_file": str(sim.ca_file),
            "client_id": creds.client_id, "client_secret": creds.client_secret,
            "access_token": creds.access_token, "refresh_token": creds.refresh_token,
            "account_id": creds.account_id,
        }) + "\n")
        out.flush()
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await sim.stop()


def run_cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not structlog.is_configured():
        # stdout carries exactly one JSON line; logs go to stderr.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    sim = Simulator(
        seed=args.seed, host=args.host, port=args.port, cert_dir=args.cert_dir,
        account_type=args.account_type,
        tick_interval=args.tick_interval if args.tick_interval > 0 else None,
        balance=args.balance)
    asyncio.run(serve_forever(sim))
    return 0
