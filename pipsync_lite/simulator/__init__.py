"""A cTrader Open API simulator: the embedded broker for tests and ``pipsync-lite demo``."""

from __future__ import annotations

from pipsync_lite.simulator.dispatch import Received
from pipsync_lite.simulator.server import Simulator
from pipsync_lite.simulator.tls import TlsFiles
from pipsync_lite.simulator.tokens import SimCredentials

__all__ = ["Received", "SimCredentials", "Simulator", "TlsFiles"]
