"""The simulated trading account: identity, type, leverage and balance in cents."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from google.protobuf.message import Message

from pipsync_lite import protos

MONEY_DIGITS = 2
_CENT = Decimal("0.01")


class AccountType(StrEnum):
    HEDGED = "hedged"
    NETTED = "netted"


def to_cents(amount: Decimal) -> int:
    """Money in the deposit currency -> integer cents, half away from zero."""
    return int(amount.quantize(_CENT, rounding=ROUND_HALF_UP).scaleb(MONEY_DIGITS))


def from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-MONEY_DIGITS)


@dataclass(slots=True)
class Account:
    account_id: int
    trader_login: int
    account_type: AccountType
    balance: int  # cents of the deposit currency
    leverage: int  # 1:leverage
    deposit_asset: str = "USD"
    balance_version: int = 0
    registered_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 86_400_000)

    @classmethod
    def create(cls, account_id: int, seed: int, account_type: AccountType,
               balance: Decimal, leverage: int) -> Account:
        login = random.Random(f"pipsync-sim-login:{seed}").randint(3_000_000, 9_999_999)
        return cls(account_id, login, account_type, to_cents(balance), leverage)

    def credit(self, cents: int) -> None:
        self.balance += cents
        self.balance_version += 1

    def trader_message(self, deposit_asset_id: int) -> Message:
        model = protos.model
        kind = model.NETTED if self.account_type is AccountType.NETTED else model.HEDGED
        return model.ProtoOATrader(
            ctidTraderAccountId=self.account_id, balance=self.balance,
            balanceVersion=self.balance_version, managerBonus=0, ibBonus=0,
            nonWithdrawableBonus=0, accessRights=model.FULL_ACCESS,
            depositAssetId=deposit_asset_id, swapFree=False,
            leverageInCents=self.leverage * 100, totalMarginCalculationType=model.SUM,
            maxLeverage=self.leverage * 100, traderLogin=self.trader_login,
            accountType=kind, brokerName="PipSim", registrationTimestamp=self.registered_ms,
            isLimitedRisk=False, moneyDigits=MONEY_DIGITS,
        )
