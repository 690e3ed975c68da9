"""The simulated cTID user's credentials and the life cycle of its OAuth tokens."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from enum import Enum

#: Lifetime the real token endpoint announces (about 30 days), in seconds.
ACCESS_TOKEN_LIFETIME = 2_628_000


@dataclass(frozen=True, slots=True)
class SimCredentials:
    """What a user copies from the cTrader developer portal, plus the account to trade."""

    client_id: str
    client_secret: str
    access_token: str
    refresh_token: str
    account_id: int

    @classmethod
    def from_seed(cls, seed: int) -> SimCredentials:
        rng = random.Random(f"pipsync-sim-credentials:{seed}")
        return cls(
            client_id=f"{rng.randint(1000, 99999)}_{_token(rng, 50)}",
            client_secret=_token(rng, 50),
            access_token=_token(rng, 43),
            refresh_token=_token(rng, 43),
            account_id=rng.randint(20_000_000, 49_999_999),
        )

    def __repr__(self) -> str:  # keeps secrets out of logs and assertion messages
        return f"SimCredentials(client_id={self.client_id!r}, account_id={self.account_id})"


class TokenState(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class TokenBook:
    """Valid, expired and dead tokens; refreshing rotates both tokens.

    As on the real server, a refresh invalidates the old access token at once and the
    refresh token that was used (it is single-use).
    """

    def __init__(self, credentials: SimCredentials, seed: int) -> None:
        self._rng = random.Random(f"pipsync-sim-refresh:{seed}")
        self.credentials = credentials
        self._access: dict[str, TokenState] = {credentials.access_token: TokenState.VALID}
        self._refresh: set[str] = {credentials.refresh_token}

    def state(self, access_token: str) -> TokenState:
        return self._access.get(access_token, TokenState.INVALID)

    def error_for(self, access_token: str) -> str | None:
        """The Open API error code for using this token, or None if it is good."""
        state = self.state(access_token)
        if state is TokenState.EXPIRED:
            return "OA_AUTH_TOKEN_EXPIRED"
        if state is TokenState.INVALID:
            return "CH_ACCESS_TOKEN_INVALID"
        return None

    def refresh(self, refresh_token: str) -> tuple[str, str] | None:
        """Issue a new (access, refresh) pair, or None if the refresh token is not live."""
        if refresh_token not in self._refresh:
            return None
        self._refresh.discard(refresh_token)
        old = self.credentials.access_token
        self._access[old] = TokenState.INVALID
        access, new_refresh = _token(self._rng, 43), _token(self._rng, 43)
        self._access[access] = TokenState.VALID
        self._refresh.add(new_refresh)
        self.credentials = replace(self.credentials, access_token=access,
                                   refresh_token=new_refresh)
        return access, new_refresh

    def expire(self, access_token: str | None = None) -> str:
        token = access_token or self.credentials.access_token
        if self.state(token) is TokenState.VALID:
            self._access[token] = TokenState.EXPIRED
        return token

    def invalidate(self, access_token: str | None = None, refresh_too: bool = False) -> str:
        token = access_token or self.credentials.access_token
        self._access[token] = TokenState.INVALID
        if refresh_too:
            self._refresh.clear()
        return token


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))
