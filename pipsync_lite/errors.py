"""The exception tree, split by what the operator (or the code) must do about it.

::

    PipsyncError
    ├── ConfigError            permanent: the YAML is wrong; fix it (key path + reason)
    ├── SignalError            permanent for this alert: a field is malformed (-> HTTP 400)
    └── BrokerError            anything the broker boundary (pipsync_lite.ctrader) raises
        ├── BrokerUnavailable  transient: not connected / connection lost before sending
        ├── BrokerTimeout      the request was sent but no answer came: outcome UNKNOWN,
        │                      reconcile, never resend blindly
        ├── BrokerRejected     the broker refused this request (error code + description)
        └── BrokerAuthError    permanent until the user re-authorizes (bad client secret,
                               dead token that refresh cannot fix)

Foreign exceptions (Twisted failures, protobuf error responses) are translated into these
at the ``ctrader/`` boundary with ``raise Mapped(...) from exc``; nothing above it sees a
Deferred or an integer error code.
"""

from __future__ import annotations


class PipsyncError(Exception):
    """Base of every error pipsync-lite raises on purpose."""


class ConfigError(PipsyncError):
    """The configuration is invalid; ``errors`` lists ``key.path: reason`` lines."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class SignalError(PipsyncError):
    """An alert body or one of its fields is malformed."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        super().__init__(f"{field}: {reason}")


class BrokerError(PipsyncError):
    """Raised at the broker boundary."""


class BrokerUnavailable(BrokerError):
    """Not connected or not authorized: nothing was sent (safe to retry later)."""


class BrokerTimeout(BrokerError):
    """Sent, but no answer in time: the outcome is unknown and must be reconciled."""


class BrokerRejected(BrokerError):
    """The broker answered with an error for this request."""

    def __init__(self, code: str, description: str = "") -> None:
        self.code = code
        self.description = description
        super().__init__(f"{code}: {description}" if description else code)


class BrokerAuthError(BrokerRejected):
    """Application or account authorization failed; the user must act."""
