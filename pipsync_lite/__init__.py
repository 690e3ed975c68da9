"""pipsync-lite: a self-hosted bridge from trading alerts to one cTrader account."""

__version__ = "0.1.0"
