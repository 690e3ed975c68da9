"""Edge tests for the unit conversions: lots ↔ volume at min/max/step, prices, distances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import SymbolInfo

EURUSD = SymbolInfo(
    symbol_id=1,
    name="EURUSD",
    digits=5,
    pip_position=4,
    lot_size=10_000_000,
    min_volume=100_000,
    max_volume=10_000_000_000,
    step_volume=100_000,
)
USDJPY = SymbolInfo(
    symbol_id=2,
    name="USDJPY",
    digits=3,
    pip_position=2,
    lot_size=10_000_000,
    min_volume=100_000,
    max_volume=10_000_000_000,
    step_volume=100_000,
)
CONTRACTS = SymbolInfo(  # a CFD in contracts: volume 100 = 1 contract, min 1, step 1
    symbol_id=3,
    name="US500",
    digits=2,
    pip_position=1,
    lot_size=100,
    min_volume=100,
    max_volume=100_000,
    step_volume=100,
)


class TestLotsToVolume:
    def test_one_lot_is_the_lot_size(self) -> None:
        assert units.lots_to_volume(Decimal("1"), EURUSD) == 10_000_000

    def test_minimum_is_accepted(self) -> None:
        assert units.lots_to_volume(Decimal("0.01"), EURUSD) == EURUSD.min_volume

    def test_maximum_is_accepted(self) -> None:
        assert units.lots_to_volume(Decimal("1000"), EURUSD) == EURUSD.max_volume

    def test_below_minimum_is_refused_with_the_numbers(self) -> None:
        symbol = SymbolInfo(**{**_fields(EURUSD), "step_volume": 10_000})
        with pytest.raises(ValueError, match=r"volume 10000 \(0\.001 lots\) is below the minimum 100000"):
            units.lots_to_volume(Decimal("0.001"), symbol)

    def test_one_step_below_minimum_is_refused(self) -> None:
        symbol = SymbolInfo(**{**_fields(EURUSD), "min_volume": 200_000})
        with pytest.raises(ValueError, match="below the minimum 200000"):
            units.lots_to_volume(Decimal("0.01"), symbol)

    def test_one_step_above_maximum_is_refused(self) -> None:
        with pytest.raises(ValueError, match="above the maximum 10000000000"):
            units.lots_to_volume(Decimal("1000.01"), EURUSD)

    def test_off_step_is_refused_not_rounded(self) -> None:
        with pytest.raises(ValueError, match=r"volume 150000 \(0\.015 lots\) is not a multiple of the step 100000"):
            units.lots_to_volume(Decimal("0.015"), EURUSD)

    def test_fraction_of_a_volume_unit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a whole number"):
            units.lots_to_volume(Decimal("0.000000001"), EURUSD)

    def test_contracts(self) -> None:
        assert units.lots_to_volume(Decimal("3"), CONTRACTS) == 300
        with pytest.raises(ValueError, match="not a whole number"):
            units.lots_to_volume(Decimal("0.005"), CONTRACTS)

    def test_strings_and_ints_are_exact(self) -> None:
        assert units.lots_to_volume("0.1", EURUSD) == 1_000_000
        assert units.lots_to_volume(2, EURUSD) == 20_000_000

    def test_floats_are_refused(self) -> None:
        with pytest.raises(TypeError):
            units.lots_to_volume(0.1, EURUSD)  # type: ignore[arg-type]

    @pytest.mark.parametrize("lots", ["0", "-1", "NaN", "Infinity", "abc"])
    def test_non_positive_or_non_numbers_are_refused(self, lots: str) -> None:
        with pytest.raises(ValueError):
            units.lots_to_volume(lots, EURUSD)

    def test_round_trip(self) -> None:
        for lots in ("0.01", "0.5", "1", "12.34", "1000"):
            volume = units.lots_to_volume(lots, EURUSD)
            assert units.volume_to_lots(volume, EURUSD) == Decimal(lots)

    def test_volume_to_lots_is_readable(self) -> None:
        assert str(units.volume_to_lots(100_000_000, EURUSD)) == "10"
        assert str(units.volume_to_lots(150_000, EURUSD)) == "0.015"


def _fields(symbol: SymbolInfo) -> dict[str, object]:
    return {name: getattr(symbol, name) for name in SymbolInfo.__slots__}


class TestPrices:
    def test_spot_ints(self) -> None:
        assert units.spot_to_price(111986) == Decimal("1.11986")
        assert units.price_to_spot(Decimal("1.11986")) == 111986
        assert units.price_to_spot("150.123") == 15_012_300

    def test_spot_refuses_finer_prices(self) -> None:
        with pytest.raises(ValueError, match="finer"):
            units.price_to_spot(Decimal("1.123456"))

    def test_round_price_half_even(self) -> None:
        assert units.round_price(Decimal("1.123455"), 5) == Decimal("1.12346")
        assert units.round_price(Decimal("1.123445"), 5) == Decimal("1.12344")
        assert units.round_price(Decimal("150.1235"), 3) == Decimal("150.124")

    def test_wire_doubles_round_trip(self) -> None:
        assert units.price_to_wire(Decimal("1.123456"), 5) == 1.12346
        assert units.price_from_wire(1.1, 5) == Decimal("1.10000")
        # a double that is not exactly the decimal still reads back as the decimal
        assert units.price_from_wire(0.1 + 0.2, 5) == Decimal("0.30000")
        assert units.price_from_wire(85287.21, 2) == Decimal("85287.21")

    def test_pips(self) -> None:
        assert units.pips_to_distance(15, EURUSD) == Decimal("0.0015")
        assert units.pips_to_distance("1.5", USDJPY) == Decimal("0.015")
        assert units.distance_to_pips(Decimal("0.00155"), EURUSD) == Decimal("15.5")
        assert units.distance_to_pips(Decimal("0.0015"), EURUSD) == Decimal("15")

    def test_points_are_the_symbols_smallest_price_step(self) -> None:
        assert units.distance_to_points(Decimal("0.00015"), EURUSD) == 15
        assert units.distance_to_points(Decimal("0.015"), USDJPY) == 15
        assert units.distance_to_points(Decimal("-0.0002"), EURUSD) == 20
        with pytest.raises(ValueError, match="finer than a point"):
            units.distance_to_points(Decimal("0.000015"), EURUSD)

    def test_relative_distance(self) -> None:
        assert units.relative_distance(Decimal("1.10000"), Decimal("1.09850")) == 150
        assert units.relative_distance(Decimal("1.09850"), Decimal("1.10000")) == 150
        assert units.relative_distance("150.000", "149.500") == 50_000
        assert units.relative_from_pips(15, EURUSD) == 150
        assert units.relative_from_pips(15, USDJPY) == 15_000
        assert units.relative_to_distance(150) == Decimal("0.00150")

    def test_relative_distance_refuses_sub_point(self) -> None:
        with pytest.raises(ValueError):
            units.relative_distance("1.100001", "1.1")


class TestMoney:
    def test_money_digits(self) -> None:
        assert units.money(851120773, 2) == Decimal("8511207.73")
        assert units.money(-8081, 2) == Decimal("-80.81")
        assert units.money(5, 0) == Decimal("5")

    def test_leverage(self) -> None:
        assert units.leverage(10000) == Decimal("100")
        assert units.leverage(3333) == Decimal("33.33")
