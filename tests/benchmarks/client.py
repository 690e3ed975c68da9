"""``python -m tests.benchmarks.client``: the broker client alone, ``place_order`` → the wire.

No daemon, no HTTP, no SQLite: a ``CTraderClient`` in this process trades with the simulator
behind the wire tap (``broker.py``, two child processes), so what is measured is the client:

1. **Call → wire**: from ``place_order`` called to the ``ProtoOANewOrderReq`` read by the tap
   (``time.monotonic()``, one clock for all processes), and to the first ``socket.send`` of
   the client after the call (**socket**, in process); sequential (each order awaited, the
   next one at once) and isolated (one order every ``1/rate`` s, the loop idle in between, as
   in production). Unpaced (the 50/s limit lifted at both ends).
2. **CPU per order**: this process's user + system time over each load, divided by its orders
   (the whole order: request build, encode, write, the answers' decode and routing).
3. **Unit costs** (µs per call, best of 5) on real frames taken from the simulator: decode of
   the ORDER_ACCEPTED and ORDER_FILLED execution events and of a SpotEvent, the client's whole
   inbound path for each (``Connection.frame_received``), and the request's build and encode.

    python -m tests.benchmarks.client [--orders 300] [--rate 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import UNPACED, Broker, Spread


def per_call(fn: Callable[[], Any], n: int = 2000) -> float:
    """Best of 5 runs, µs per call."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def watch_socket_writes(client: Any) -> list[float]:
    """When bytes were handed to the client's socket (benchmark instrumentation: the TCP
    transport's ``writeSomeData``, which every send goes through, wrapped on this instance)."""
    conn = client._session.conn
    sock = conn.protocol.transport.transport
    times: list[float] = []
    write = sock.writeSomeData

    def timed(data: Any) -> Any:
        times.append(time.monotonic())
        return write(data)

    sock.writeSomeData = timed
    return times


async def run(orders: int, rate: float) -> list[str]:
    from pipsync_lite.ctrader.bridge import install_reactor
    from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
    from pipsync_lite.ctrader.model import OrderRequest, Side

    install_reactor(asyncio.get_running_loop())
    workroot = Path(tempfile.mkdtemp(prefix="bench-client-"))
    broker = await Broker.start(workroot, paced=False)
    spec = broker.spec
    client = CTraderClient(
        ClientSettings(
            host="localhost",
            port=spec["port"],
            ca_file=Path(spec["ca_file"]),
            client_id=spec["client_id"],
            client_secret=spec["client_secret"],
            access_token=spec["access_token"],
            refresh_token=spec["refresh_token"],
            account_id=spec["account_id"],
            requests_per_second=UNPACED,
        )
    )
    await client.start()
    lines: list[str] = []
    try:
        assert await client.wait_ready(15), client.last_error
        symbol_id = spec["symbol_id"]
        await client.subscribe_quotes({symbol_id})
        tag = secrets.token_hex(3)
        serial = iter(range(1, 10**9))
        socket_writes = watch_socket_writes(client)

        async def order() -> tuple[str, float]:
            n = next(serial)
            label = f"psl-{tag}-{n}"
            request = OrderRequest(
                symbol_id=symbol_id,
                side=Side.BUY,
                volume=100_000,
                label=label,
                client_order_id=label,
            )
            socket_writes.clear()
            called = time.monotonic()
            await client.place_order(request)
            written[f"d{tag}-{n}"] = socket_writes[0] if socket_writes else float("nan")
            return f"d{tag}-{n}", called

        written: dict[str, float] = {}

        for _ in range(30):  # warm-up: first-call costs, the netted position exists
            await order()
        await broker.collect()
        lines += [
            (
                "| load | orders | socket p50 ms | socket p99 ms | wire p50 ms | wire p99 ms "
                "| wire max ms | CPU µs/order |"
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        for load in ("sequential", f"isolated, {rate:g}/s"):
            called: dict[str, float] = {}
            cpu0 = cpu_s()
            for _ in range(orders):
                key, t = await order()
                called[key] = t
                if load != "sequential":
                    await asyncio.sleep(1 / rate)
            cpu = cpu_s() - cpu0
            arrivals = await broker.collect()
            spread = Spread.of(
                [arrivals[k] - t for k, t in called.items() if k in arrivals]
            )
            socket = Spread.of([written[k] - t for k, t in called.items()])
            lines.append(
                f"| {load} | {spread.n} | {socket.p50:.3f} | {socket.p99:.3f} "
                f"| {spread.p50:.3f} | {spread.p99:.3f} | {spread.max:.3f} "
                f"| {cpu / orders * 1e6:.0f} |"
            )
    finally:
        await client.stop()
        await broker.stop()
    return lines


async def unit_costs(workdir: Path) -> list[str]:
    from pipsync_lite import protos
    from pipsync_lite.ctrader import translate
    from pipsync_lite.ctrader.bridge import install_reactor
    from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
    from pipsync_lite.ctrader.model import OrderRequest, Side
    from pipsync_lite.simulator import Simulator
    from tests.simulator.wire import WireClient, new_order, trade

    install_reactor(asyncio.get_running_loop())
    sim = Simulator(
        seed=3,
        cert_dir=workdir / "unit-tls",
        tick_interval=None,
        account_type="netted",
        balance=Decimal(1000000000),
    )
    await sim.start()
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    creds = sim.credentials
    client = CTraderClient(
        ClientSettings(
            host="localhost",
            port=sim.port,
            ca_file=sim.ca_file,
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            access_token=creds.access_token,
            refresh_token=creds.refresh_token,
            account_id=creds.account_id,
        )
    )
    await client.start()
    try:
        assert await client.wait_ready(15), client.last_error
        symbol = client.symbol("EURUSD")
        assert symbol is not None
        wire = await WireClient.connect(sim)
        await wire.authorize(creds)
        executions = [
            m
            for m in await trade(wire, new_order(sim, "EURUSD", "BUY", 100_000))
            if m.DESCRIPTOR.name == "ProtoOAExecutionEvent"
        ]
        accepted, filled = (protos.encode(m, "c123") for m in executions[-2:])
        await wire.request(
            protos.messages.ProtoOASubscribeSpotsReq(
                ctidTraderAccountId=creds.account_id, symbolId=[symbol.symbol_id]
            )
        )
        sim.set_price("EURUSD", bid=Decimal("1.10001"), ask=Decimal("1.10011"))
        spot = protos.encode(await wire.wait_named("ProtoOASpotEvent"))
        await wire.close()
        await client.subscribe_quotes({symbol.symbol_id})
        conn = client._session.conn
        assert conn is not None
        request = OrderRequest(
            symbol_id=symbol.symbol_id,
            side=Side.BUY,
            volume=100_000,
            label="psl-abcdef-123456",
            client_order_id="psl-abcdef-123456",
        )
        message = translate.new_order_request(request, creds.account_id, symbol)
        margin = protos.encode(
            protos.messages.ProtoOAMarginChangedEvent(
                ctidTraderAccountId=creds.account_id,
                positionId=1,
                usedMargin=2200,
                moneyDigits=2,
            )
        )
        rows = [
            (
                "protos.decode, ORDER_ACCEPTED execution event",
                per_call(lambda: protos.decode(accepted)),
            ),
            (
                "protos.decode, ORDER_FILLED execution event",
                per_call(lambda: protos.decode(filled)),
            ),
            ("protos.decode, SpotEvent", per_call(lambda: protos.decode(spot))),
            (
                "Connection.frame_received, ORDER_ACCEPTED (decode + state + route)",
                per_call(lambda: conn.frame_received(accepted)),
            ),
            (
                "Connection.frame_received, ORDER_FILLED (decode + state + route)",
                per_call(lambda: conn.frame_received(filled)),
            ),
            (
                "Connection.frame_received, SpotEvent",
                per_call(lambda: conn.frame_received(spot)),
            ),
            (
                "Connection.frame_received, a margin event nobody reads",
                per_call(lambda: conn.frame_received(margin)),
            ),
            (
                "translate.new_order_request",
                per_call(lambda: translate.new_order_request(request, 1, symbol)),
            ),
            (
                "protos.encode of the NewOrderReq",
                per_call(lambda: protos.encode(message, "p-1")),
            ),
        ]
        return [
            "| step | µs |",
            "|---|---|",
            *(f"| {name} | {us:.1f} |" for name, us in rows),
        ]
    finally:
        await client.stop()
        await sim.stop()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.client")
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument(
        "--rate", type=float, default=40.0, help="orders/s of the isolated load"
    )
    parser.add_argument("--no-units", action="store_true")
    args = parser.parse_args(argv)
    from pipsync_lite import logs

    logs.configure("warning", "json", ())
    print("### place_order → NewOrderReq read at the broker (unpaced)\n")
    print("\n".join(await run(args.orders, args.rate)))
    if not args.no_units:
        print("\n### Unit costs (in process, µs per call, best of 5)\n")
        print(
            "\n".join(await unit_costs(Path(tempfile.mkdtemp(prefix="bench-units-"))))
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
