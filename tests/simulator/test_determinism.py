"""Same seed, same simulator: prices, credentials and ids repeat; another seed differs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipsync_lite.simulator import Simulator
from pipsync_lite.simulator.feed import PriceFeed
from pipsync_lite.simulator.instruments import INSTRUMENTS

from .wire import WireClient, new_order, trade


def _walk(seed: int, ticks: int) -> list[dict[str, tuple[Decimal, Decimal]]]:
    sim = Simulator(seed=seed)
    path = []
    for _ in range(ticks):
        sim.step()
        path.append(sim.quotes())
    return path


def test_same_seed_gives_the_same_prices_and_credentials() -> None:
    assert _walk(11, 100) == _walk(11, 100)
    assert Simulator(seed=11).credentials == Simulator(seed=11).credentials
    assert _walk(11, 20) != _walk(12, 20)
    assert Simulator(seed=11).credentials != Simulator(seed=12).credentials


async def _session_ids(seed: int, tmp_path: Path) -> list[tuple[str, int, int, int, float]]:
    async with Simulator(seed=seed, cert_dir=tmp_path / str(seed)) as sim:
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        sim.step(30)
        got = await trade(client, new_order(sim, "EURUSD", "BUY", 10_000_000,
                                            relativeStopLoss=200), events=3)
        sim.step(30)
        await client.close()
        return [(str(e.executionType), e.order.orderId, e.position.positionId,
                 e.deal.dealId, e.order.executionPrice) for e in got] + [
            (str(sim.account.trader_login), sim.account_id, 0, 0, 0.0)]


async def test_same_seed_gives_the_same_ids_through_the_wire(tmp_path: Path) -> None:
    first = await _session_ids(5, tmp_path / "a")
    assert first == await _session_ids(5, tmp_path / "b")
    assert first != await _session_ids(6, tmp_path / "c")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), ticks=st.integers(1, 300))
def test_random_walk_keeps_quotes_sane(seed: int, ticks: int) -> None:
    feed = PriceFeed(INSTRUMENTS, seed)
    open_ids = {i.symbol_id for i in INSTRUMENTS}
    for _ in range(ticks):
        for change in feed.tick(open_ids):
            assert change.bid is not None or change.ask is not None
    for inst in INSTRUMENTS:
        quote = feed.quote(inst.symbol_id)
        assert 0 < quote.bid < quote.ask
        assert quote.ask - quote.bid <= 2 * inst.spread_points
