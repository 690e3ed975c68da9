"""YAML configuration → validated, frozen models; ``${ENV}`` substitution; redaction.

Validated once, here, at the edge: nothing after this module touches a dict. Every error
names its key path and the reason (``risk.max_lots: must be > 0, got -1``); unknown keys
are errors (a misspelt limit silently ignored is a limit that does not hold).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipsync_lite.errors import ConfigError
from pipsync_lite.events import EVENT_TYPES
from pipsync_lite.risk_config import RiskConfig

DEMO_HOST = "demo.ctraderapi.com"
LIVE_HOST = "live.ctraderapi.com"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _lower(value: Any) -> Any:
    """Enum-like values are case-insensitive everywhere (contract)."""
    return value.lower() if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """Webhook intake: ``per_minute`` alerts on average, ``burst`` at once (a token bucket)."""

    per_minute: int = Field(gt=0)
    burst: int = Field(1, gt=0)
#: ``server.allowed_ips`` presets: a name standing for a sender's published addresses.
IP_PRESETS: dict[str, tuple[str, ...]] = {
    # TradingView's webhook senders (its support page "About webhooks"); IPv4 only.
    "tradingview": ("52.89.214.238/32", "34.212.75.30/32", "54.218.53.128/32", "52.32.178.7/32"),
}


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    webhook_token: SecretStr
    api_token: SecretStr | None = None
    rate_limit: RateLimit | None = None
    allowed_ips: tuple[str, ...] = ()
    trust_proxy: int = Field(0, ge=0, le=10)
    inbound_hmac_secret: SecretStr | None = None
    signature_tolerance_seconds: int = Field(300, ge=5, le=3600)
    client_timeout_seconds: Decimal = Field(Decimal(15), gt=0, le=300)

    @field_validator("allowed_ips", mode="before")
    @classmethod
    def _ip_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("allowed_ips")
    @classmethod
    def _ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """CIDR ranges, single addresses or preset names; expanded to CIDR ranges here."""
        ranges: list[str] = []
        for entry in value:
            text = str(entry).strip()
            if text.lower() in IP_PRESETS:
                ranges.extend(IP_PRESETS[text.lower()])
                continue
            try:
                ranges.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                presets = ", ".join(IP_PRESETS)
                raise ValueError(f"{text!r} is not an IP address, a CIDR range or a preset ({presets})") from None
        return tuple(dict.fromkeys(ranges))

    @field_validator("inbound_hmac_secret")
    @classmethod
    def _hmac_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random string)")
        return value

    @field_validator("webhook_token", "api_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # A token is the only thing between the internet and an order: refuse guessable ones.
        if value is None:
            return value
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random string)")
        if not re.fullmatch(r"[A-Za-z0-9._~-]+", value.get_secret_value()):
            raise ValueError("may contain only letters, digits and . _ ~ - (it is part of a URL)")
        return value


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _optional_http_url(value: str | None) -> str | None:
    return None if value is None else _http_url(value)


class OAuthConfig(_Model):
    """Where ``pipsync-lite auth`` sends the browser and exchanges the code (Spotware's by default)."""

    authorize_url: str = "https://id.ctrader.com/my/settings/openapi/grantingaccess/"
    token_url: str = "https://openapi.ctrader.com/apps/token"
    redirect_uri: str = "http://localhost:8765/callback"

    _urls = field_validator("authorize_url", "token_url", "redirect_uri")(_http_url)


class CTraderConfig(_Model):
    environment: Literal["demo", "live"] = "demo"
    host: str | None = None
    port: int = Field(5035, ge=1, le=65535)
    ca_file: Path | None = None
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Optional: `pipsync-lite auth` stores tokens in the database (contract: Tokens).
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    account_id: int = Field(gt=0)
    request_timeout_seconds: Decimal = Field(Decimal(10), gt=0, le=120)
    on_disconnected: Literal["queue", "reject"] = "queue"
    max_queue_age_seconds: int = Field(30, ge=0, le=86_400)
    stop_audit_interval_seconds: Decimal = Field(Decimal(60), ge=0, le=86_400)
    oauth: OAuthConfig = OAuthConfig()

    _lower_env = field_validator("environment", "on_disconnected", mode="before")(_lower)

    @property
    def resolved_host(self) -> str:
        if self.host:
            return self.host
        return LIVE_HOST if self.environment == "live" else DEMO_HOST

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value


class StorageConfig(_Model):
    path: Path = Path("pipsync-lite.db")


class SymbolsConfig(_Model):
    map: dict[str, str] = Field(default_factory=dict)

    @field_validator("map")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for alert_name, broker_name in value.items():
            if not str(alert_name).strip() or not str(broker_name).strip():
                raise ValueError("alert and broker names must be non-empty")
        # Alert names are matched case-insensitively (TradingView tickers are upper case).
        return {str(k).strip().upper(): str(v).strip() for k, v in value.items()}


class TelegramConfig(_Model):
    bot_token: SecretStr
    chat_id: str = Field(min_length=1)
    api_url: str = "https://api.telegram.org"

    _url = field_validator("api_url")(_http_url)

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class NotifyTarget(_Model):
    """One destination of outbound events: a signed webhook (``url`` + ``secret``) or Telegram."""

    url: str | None = None
    secret: SecretStr | None = None
    telegram: TelegramConfig | None = None
    events: tuple[str, ...] = Field(("*",), min_length=1)

    _url = field_validator("url")(_optional_http_url)

    @field_validator("events", mode="before")
    @classmethod
    def _lower_events(cls, value: Any) -> Any:
        return [_lower(v) for v in value] if isinstance(value, list | tuple) else value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not any(event_matches(pattern, t) for t in EVENT_TYPES):
                raise ValueError(f"{pattern!r} matches no event type (known: {', '.join(EVENT_TYPES)})")
        return value

    @model_validator(mode="after")
    def _one_channel(self) -> NotifyTarget:
        if (self.url is None) == (self.telegram is None):
            raise ValueError("give either url (with secret) or telegram, not both or neither")
        if self.url is not None and (self.secret is None or len(self.secret.get_secret_value()) < 16):
            raise ValueError("a url needs a secret of at least 16 characters (it signs every request)")
        if self.telegram is not None and self.secret is not None:
            raise ValueError("secret signs webhook requests; a telegram target takes none")
        return self

    @property
    def key(self) -> str:
        """How outbox rows name this target: the URL, or ``telegram:<chat_id>`` (no secrets)."""
        return self.url if self.url is not None else f"telegram:{self.telegram.chat_id}"  # type: ignore[union-attr]

    def wants(self, event_type: str) -> bool:
        return any(event_matches(pattern, event_type) for pattern in self.events)


def event_matches(pattern: str, event_type: str) -> bool:
    """``*`` = every event, ``trade.*`` = every event of that family, else the exact type."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"

    _lower_enums = field_validator("level", "format", mode="before")(_lower)


class Config(_Model):
    server: ServerConfig
    ctrader: CTraderConfig
    storage: StorageConfig = StorageConfig()
    symbols: SymbolsConfig = SymbolsConfig()
    risk: RiskConfig = RiskConfig()
    logging: LoggingConfig = LoggingConfig()
    notify: tuple[NotifyTarget, ...] = ()

    def secrets(self) -> list[str]:
        """Every configured secret value: what must never appear in logs, answers or the DB."""
        values = [
            self.server.webhook_token,
            self.server.api_token,
            self.server.inbound_hmac_secret,
            self.ctrader.client_secret,
            self.ctrader.access_token,
            self.ctrader.refresh_token,
            *(t.secret for t in self.notify),
            *(t.telegram.bot_token for t in self.notify if t.telegram is not None),
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    @functools.cached_property
    def version(self) -> str:
        """A short digest of the effective configuration, recorded with every decision.

        Computed once per configuration (the model is frozen). A copy with changes (a reload's
        merge) is another configuration: :meth:`model_copy` does not carry the digest over."""
        dumped = self.model_dump_json(exclude={"server": {"webhook_token", "api_token", "inbound_hmac_secret"}})
        return hashlib.sha256(dumped.encode()).hexdigest()[:12]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Config:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("version", None)  # cached_property keeps it there; pydantic copies it
        return copied


# -- loading ------------------------------------------------------------------------------


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, substitute ``${VAR}``, validate. Raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from exc
    return parse_config(text, environ=environ, source=str(path), base_dir=path.parent)


def parse_config(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    env = os.environ if environ is None else environ
    errors: list[str] = []
    data = _substitute(raw, env, (), errors)
    if errors:
        raise ConfigError(errors)
    if base_dir is not None:
        _resolve_paths(data, base_dir)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def _substitute(value: Any, env: Mapping[str, str], path: tuple[str, ...], errors: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, env, (*path, str(k)), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, (*path, str(i)), errors) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                errors.append(f"{'.'.join(path)}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(replace, value)
    return value


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Relative file paths in the YAML are relative to the YAML file, not the cwd."""
    for section, key in (("storage", "path"), ("ctrader", "ca_file")):
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            candidate = Path(block[key]).expanduser()
            if not candidate.is_absolute():
                block[key] = str(base_dir / candidate)


_SECRET_KEYS = {
    "webhook_token", "api_token", "inbound_hmac_secret", "client_secret", "access_token", "refresh_token",
    "secret", "bot_token",
}


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "<top>"
        lines.append(f"{key}: {_reason(err, secret=bool(_SECRET_KEYS & set(loc)))}")
    return lines


def _reason(err: Mapping[str, Any], *, secret: bool) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = "<redacted>" if secret else repr(err.get("input"))
    if kind == "extra_forbidden":
        loc = err["loc"]
        return f"unknown key{_suggest(loc)}"
    if kind == "missing":
        return "required"
    bounds = {
        "greater_than": ("> ", "gt"),
        "greater_than_equal": (">= ", "ge"),
        "less_than": ("< ", "lt"),
        "less_than_equal": ("<= ", "le"),
    }
    if kind in bounds:
        op, name = bounds[kind]
        return f"must be {op}{ctx.get(name)}, got {_plain(err.get('input'))}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got}"
    message = str(err.get("msg", kind)).removeprefix("Value error, ")
    if _holds_secret(err.get("input")):  # a whole section with a secret in it: no echo
        return message
    return f"{message}, got {got}"


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(k in _SECRET_KEYS or _holds_secret(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_secret(v) for v in value)


def _plain(value: Any) -> str:
    return str(value) if isinstance(value, int | float | Decimal | str) else repr(value)


def _suggest(loc: tuple[Any, ...]) -> str:
    fields = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        annotation = field.annotation if field else None
        if get_origin(annotation) is dict and parts:  # e.g. risk.symbols.<NAME>.<key>
            annotation = get_args(annotation)[1]
            parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def redacted(config: Config) -> dict[str, Any]:
    """The configuration as a dict for logging, with every secret masked."""
    return config.model_dump(mode="json")  # SecretStr dumps as '**********'
