"""The simulated broker's assets and symbols, and their Open API renderings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from google.protobuf.message import Message

from pipsync_lite import protos

_WEEK_SECONDS = 7 * 24 * 3600
#: Spot prices travel as integers in 1/100000 of the price, whatever the symbol's digits.
SPOT_SCALE = 100_000


@dataclass(frozen=True, slots=True)
class Asset:
    asset_id: int
    name: str
    display_name: str
    digits: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol: contract metadata plus the random walk's starting point."""

    symbol_id: int
    name: str
    description: str
    base: str  # asset names, resolved through ASSETS
    quote: str
    category_id: int
    digits: int
    pip_position: int
    lot_size: int  # protocol volume (0.01 of a unit) in one lot
    min_volume: int
    step_volume: int
    max_volume: int
    start_bid: Decimal
    spread_points: int  # points = 1/10**digits
    volatility_points: int  # largest move of one side in one tick
    commission_per_lot: Decimal  # USD per lot per side, charged on open and on close

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    @property
    def spot_per_point(self) -> int:
        """Spot units (1/100000) in one point of this symbol."""
        return 10 ** (5 - self.digits)

    def on_grid(self, price: Decimal) -> bool:
        return price == price.quantize(self.point)


ASSETS: tuple[Asset, ...] = (
    Asset(1, "EUR", "Euro", 2),
    Asset(2, "USD", "US Dollar", 2),
    Asset(3, "GBP", "British Pound", 2),
    Asset(4, "JPY", "Japanese Yen", 0),
    Asset(5, "XAU", "Gold", 2),
    Asset(6, "BTC", "Bitcoin", 8),
    Asset(7, "US500", "US 500 Index", 2),
)
ASSET_BY_NAME = {a.name: a for a in ASSETS}

#: (category id, asset class id, name)
CATEGORIES: tuple[tuple[int, int, str], ...] = (
    (1, 1, "Forex Majors"),
    (2, 1, "Forex Crosses"),
    (3, 2, "Metals"),
    (4, 3, "Indices"),
    (5, 4, "Crypto"),
)

_FX_LOT = 10_000_000  # 100,000 units; recorded EURUSD metadata
_FX = dict(lot_size=_FX_LOT, min_volume=100_000, step_volume=100_000, max_volume=10_000_000_000)
_FX_COMMISSION = Decimal("3.00")

# Symbol ids are deliberately not 1..N in list order, so a client that confuses list
# position with symbolId fails loudly.
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(1, "EURUSD", "Euro vs US Dollar", "EUR", "USD", 1, 5, 4, **_FX,
               start_bid=Decimal("1.08500"), spread_points=8, volatility_points=4,
               commission_per_lot=_FX_COMMISSION),
    Instrument(2, "GBPUSD", "British Pound vs US Dollar", "GBP", "USD", 1, 5, 4, **_FX,
               start_bid=Decimal("1.26500"), spread_points=12, volatility_points=5,
               commission_per_lot=_FX_COMMISSION),
    Instrument(3, "EURJPY", "Euro vs Japanese Yen", "EUR", "JPY", 2, 3, 2, **_FX,
               start_bid=Decimal("164.300"), spread_points=18, volatility_points=5,
               commission_per_lot=_FX_COMMISSION),
    Instrument(4, "USDJPY", "US Dollar vs Japanese Yen", "USD", "JPY", 1, 3, 2, **_FX,
               start_bid=Decimal("151.500"), spread_points=12, volatility_points=4,
               commission_per_lot=_FX_COMMISSION),
    Instrument(9, "EURGBP", "Euro vs British Pound", "EUR", "GBP", 2, 5, 4, **_FX,
               start_bid=Decimal("0.85700"), spread_points=15, volatility_points=3,
               commission_per_lot=_FX_COMMISSION),
    # 1 lot = 100 oz = volume 10,000; minimum 0.01 lot = 1 oz.
    Instrument(41, "XAUUSD", "Gold vs US Dollar", "XAU", "USD", 3, 2, 1,
               lot_size=10_000, min_volume=100, step_volume=100, max_volume=10_000_000,
               start_bid=Decimal("2345.10"), spread_points=25, volatility_points=40,
               commission_per_lot=_FX_COMMISSION),
    # Index CFD in contracts: volume 100 = 1 contract (recorded convention), min 0.1.
    Instrument(10015, "US500", "US 500 Index CFD", "US500", "USD", 4, 2, 0,
               lot_size=100, min_volume=10, step_volume=10, max_volume=1_000_000,
               start_bid=Decimal("5200.00"), spread_points=50, volatility_points=60,
               commission_per_lot=Decimal("0")),
    # 1 lot = 1 BTC = volume 100; minimum 0.01 BTC.
    Instrument(10026, "BTCUSD", "Bitcoin vs US Dollar", "BTC", "USD", 5, 2, 0,
               lot_size=100, min_volume=1, step_volume=1, max_volume=10_000,
               start_bid=Decimal("65000.00"), spread_points=3000, volatility_points=2500,
               commission_per_lot=Decimal("0")),
)


class Catalogue:
    """Look-ups over the instruments and assets, and their protobuf renderings."""

    def __init__(self, instruments: tuple[Instrument, ...] = INSTRUMENTS,
                 assets: tuple[Asset, ...] = ASSETS) -> None:
        self.instruments = instruments
        self.assets = assets
        self._by_id = {i.symbol_id: i for i in instruments}
        self._by_name = {i.name: i for i in instruments}
        self._asset_by_name = {a.name: a for a in assets}

    def by_id(self, symbol_id: int) -> Instrument | None:
        return self._by_id.get(symbol_id)

    def by_name(self, name: str) -> Instrument:
        try:
            return self._by_name[name.upper()]
        except KeyError:
            raise KeyError(f"unknown symbol {name!r}") from None

    def resolve(self, symbol: str | int) -> Instrument:
        if isinstance(symbol, int):
            found = self.by_id(symbol)
            if found is None:
                raise KeyError(f"unknown symbol id {symbol}")
            return found
        return self.by_name(symbol)

    def asset(self, name: str) -> Asset:
        return self._asset_by_name[name]

    def pair(self, base: str, quote: str) -> Instrument | None:
        """The instrument quoting ``base`` in ``quote``, if the broker lists one."""
        for inst in self.instruments:
            if inst.base == base and inst.quote == quote:
                return inst
        return None

    def light_symbol(self, inst: Instrument) -> Message:
        return protos.model.ProtoOALightSymbol(
            symbolId=inst.symbol_id, symbolName=inst.name, enabled=True,
            baseAssetId=self.asset(inst.base).asset_id,
            quoteAssetId=self.asset(inst.quote).asset_id,
            symbolCategoryId=inst.category_id, description=inst.description,
        )

    def full_symbol(self, inst: Instrument) -> Message:
        model = protos.model
        # The simulated market trades around the clock (one interval covering the whole
        # week): a schedule that closes at weekends would make tests depend on the day
        # they run. Closing a market is an explicit test knob instead.
        week = model.ProtoOAInterval(startSecond=0, endSecond=_WEEK_SECONDS)
        return model.ProtoOASymbol(
            symbolId=inst.symbol_id, digits=inst.digits, pipPosition=inst.pip_position,
            enableShortSelling=True, guaranteedStopLoss=False,
            swapRollover3Days=model.WEDNESDAY, swapLong=0.0, swapShort=0.0,
            maxVolume=inst.max_volume, minVolume=inst.min_volume,
            stepVolume=inst.step_volume, maxExposure=0, schedule=[week],
            commission=int(inst.commission_per_lot * 100),
            commissionType=model.USD_PER_LOT,
            preciseTradingCommissionRate=int(inst.commission_per_lot * 10**8),
            slDistance=0, tpDistance=0, gslDistance=0, gslCharge=0,
            distanceSetIn=model.SYMBOL_DISTANCE_IN_POINTS,
            minCommission=0, minCommissionType=model.CURRENCY, minCommissionAsset="USD",
            rolloverCommission=0, skipRolloverDays=0, scheduleTimeZone="UTC",
            tradingMode=model.ENABLED, lotSize=inst.lot_size,
        )

    def asset_message(self, asset: Asset) -> Message:
        return protos.model.ProtoOAAsset(
            assetId=asset.asset_id, name=asset.name, displayName=asset.display_name,
            digits=asset.digits,
        )

    def category_messages(self) -> list[Message]:
        return [protos.model.ProtoOASymbolCategory(id=cid, assetClassId=aid, name=name)
                for cid, aid, name in CATEGORIES]
