"""Who may call the webhook: source IP allowlist (behind N trusted proxies) and signed requests.

- ``server.allowed_ips``: CIDR ranges, single addresses, or the preset ``tradingview``
  (its four published sender addresses). Empty = every address. Guards the webhook only.
- ``server.trust_proxy``: how many reverse proxies in front of the daemon append to
  ``X-Forwarded-For``. With N, the client is the N-th address from the right of that header
  (the ones further left were written by the client and prove nothing); 0 ignores the header.
- ``server.inbound_hmac_secret``: every webhook request must carry
  ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` (several
  ``v1=`` allowed, for rotating the secret), ``t`` within ``signature_tolerance_seconds`` of
  now, and a signature is accepted once (a replay inside the window is refused too).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SIGNATURE_HEADER = "X-Signature"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Signature`` header value for ``body`` at ``timestamp`` (for scripts and tests)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def _digest(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=1024)  # parsed per request otherwise; the same few senders call
def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 on a dual-stack socket is 1.2.3.4
    return address


@dataclass(frozen=True, slots=True)
class Verdict:
    """``ok``, or the HTTP status and reason to refuse with."""

    ok: bool
    status: int = 200
    reason: str = ""


OK = Verdict(True)


class Access:
    """The webhook's gatekeeper: pure checks over the peer address, headers and body."""

    def __init__(
        self,
        allowed: Iterable[str] = (),
        trust_proxy: int = 0,
        hmac_secret: str | None = None,
        tolerance_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in allowed)
        self._trust_proxy = trust_proxy
        self._secret = hmac_secret
        self._tolerance = tolerance_seconds
        self._clock = clock
        self._seen: dict[str, float] = {}  # signature -> its timestamp, for replay refusal

    @property
    def signing_required(self) -> bool:
        return bool(self._secret)

    def client_ip(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str | None:
        """The caller's address: the peer, or the N-th X-Forwarded-For entry from the right."""
        if self._trust_proxy == 0:
            address = _address(peer)
            return str(address) if address else peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        if not hops:
            address = _address(peer)
        elif len(hops) >= self._trust_proxy:
            address = _address(hops[-self._trust_proxy])
        else:  # fewer entries than proxies: every one was written by a trusted proxy
            address = _address(hops[0])
        return str(address) if address else None

    def ip_allowed(self, client_ip: str | None) -> Verdict:
        if not self._networks:
            return OK
        address = _address(client_ip)
        if address is not None and any(address in network for network in self._networks):
            return OK
        return Verdict(False, 403, f"source address {client_ip or 'unknown'} is not in server.allowed_ips")

    def signature_valid(self, header: str | None, body: bytes) -> Verdict:
        """Checks ``X-Signature`` when ``inbound_hmac_secret`` is set (else always OK)."""
        if not self._secret:
            return OK
        if not header:
            return Verdict(False, 401, f"the request is not signed: an {SIGNATURE_HEADER} header is required")
        timestamp, candidates = _parse(header)
        if timestamp is None or not candidates:
            return Verdict(False, 401, f"{SIGNATURE_HEADER} must read t=<unix seconds>,v1=<hex HMAC-SHA256>")
        now = self._clock()
        if abs(now - timestamp) > self._tolerance:
            return Verdict(False, 401, f"the signature's timestamp is more than {self._tolerance} s from now")
        expected = _digest(self._secret, timestamp, body)
        match = next((c for c in candidates if hmac.compare_digest(c, expected)), None)
        if match is None:
            return Verdict(False, 401, "the signature does not match the body")
        self._forget_before(now - self._tolerance)
        if match in self._seen:
            return Verdict(False, 401, "this signature was already used (replay)")
        self._seen[match] = timestamp
        return OK

    def _forget_before(self, cutoff: float) -> None:
        for signature in [s for s, t in self._seen.items() if t < cutoff]:
            del self._seen[signature]


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and _HEX64.fullmatch(value):
            candidates.append(value.lower())
    return timestamp, candidates
