"""Composition root: builds every part from a Config and starts/stops them in order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from pipsync_lite import api, logs, status_page, tokens
from pipsync_lite.access import Access
from pipsync_lite.audit import StopAudit
from pipsync_lite.catchup import CatchUp
from pipsync_lite.config import Config, redacted
from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.bridge import install_reactor
from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import BrokerEvent, ConnectionChange
from pipsync_lite.ctrader.settings import ClientSettings
from pipsync_lite.engine import Engine, utcnow
from pipsync_lite.errors import ConfigError
from pipsync_lite.events import EventBus
from pipsync_lite.intake import Intake
from pipsync_lite.journal import JournalBroker
from pipsync_lite.ledger import Ledger
from pipsync_lite.metrics import Metrics, TimedBroker
from pipsync_lite.monitor import RiskMonitor
from pipsync_lite.recovery import Recovery
from pipsync_lite.notify import Notifier
from pipsync_lite.reload import Change, Reloader
from pipsync_lite.store import Store
from pipsync_lite.tokens import TokenManager
from pipsync_lite.web import WebState, make_app

log = structlog.get_logger("pipsync_lite.app")


def client_settings(config: Config, pair: tokens.TokenPair) -> ClientSettings:
    c = config.ctrader
    return ClientSettings(
        host=c.resolved_host,
        port=c.port,
        ca_file=c.ca_file,
        client_id=c.client_id,
        client_secret=c.client_secret.get_secret_value(),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        access_token_expires_at=None if pair.expires_at is None else pair.expires_at.timestamp(),
        account_id=c.account_id,
        request_timeout=float(c.request_timeout_seconds),
    )


#: HTTP parser limits (aiohttp): a request line or one header over 8 KiB, or more than 64
#: headers, is refused with 400 before any handler runs.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64

NO_TOKEN = "ctrader.access_token: no access token in the YAML or the database: run `pipsync-lite auth`"


class Daemon:
    """The running product: web edge, engine, trade log and broker session on one loop.

    ``broker_settings`` may adjust the client's settings (tests shorten heartbeats with it).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        config_path: Path | None = None,
        monitor_interval: float = 1.0,
        reload_poll: float = 0.5,
        broker_settings: Callable[[ClientSettings], ClientSettings] | None = None,
        notify_backoff: float = 10.0,
    ) -> None:
        self.config = config
        self._clock = clock
        self._broker_settings = broker_settings
        self._notify_backoff = notify_backoff
        self.notifier: Notifier | None = None
        self.metrics: Metrics | None = None
        self._config_path = config_path
        self._monitor_interval = monitor_interval
        self._reload_poll = reload_poll
        self.monitor: RiskMonitor | None = None
        self.reloader: Reloader | None = None
        #: Called with the new configuration after a reload (notifiers, ...).
        self.reload_listeners: list[Callable[[Config], None]] = []
        self.store = Store(config.storage.path)
        self.broker: CTraderClient | None = None
        self.ledger: Ledger | None = None
        self.engine: Engine | None = None
        self.tokens: TokenManager | None = None
        self.intake: Intake | None = None
        self.recovery: Recovery | None = None
        self.audit: StopAudit | None = None
        self.journal: JournalBroker | None = None
        self._web: WebState | None = None
        self._runner: web.AppRunner | None = None
        self.port: int = config.server.port
        self.events = EventBus()

    @property
    def base_url(self) -> str:
        host = self.config.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhook/{self.config.server.webhook_token.get_secret_value()}"

    async def start(self) -> None:
        install_reactor(asyncio.get_running_loop())
        log.info("daemon_starting", config_version=self.config.version, config=redacted(self.config))
        await self.store.open()
        self.tokens = TokenManager(self.store, self.config.ctrader, self.events, self._clock)
        pair = await self.tokens.load()
        if pair is None:
            await self.store.close()
            raise ConfigError([NO_TOKEN])
        settings = dataclasses.replace(
            client_settings(self.config, pair), access_token_expires_at=self.tokens.expires_at_epoch()
        )
        if self._broker_settings is not None:
            settings = self._broker_settings(settings)
        self.broker = CTraderClient(settings, on_tokens=self.tokens.save)
        self.notifier = Notifier(
            self.config.notify, self.store, secrets=self.config.secrets(), lots_of=self._lots_of,
            backoff=self._notify_backoff,
        )
        self.events.subscribe(self.notifier.on_event)
        self.reload_listeners.append(self._renotify)
        await self.notifier.start()
        self.metrics = self._metrics(self.broker)
        self.events.subscribe(self.metrics.on_event)
        self.ledger = Ledger(self.store, self.broker.symbol_by_id, self.events)
        self.intake = Intake(self.config.ctrader, self.store, self.events, self._clock)
        self.journal = journal = JournalBroker(
            TimedBroker(self.broker, self.metrics), self.store, on_unknown=self._on_unknown
        )
        self.engine = Engine(
            self.config, self.store, journal, events=self.events, clock=self._clock, intake=self.intake
        )
        await self.engine.start()
        self.recovery = Recovery(
            store=self.store,
            broker=self.broker,
            catchup=CatchUp(self.store, self.broker, self.ledger),
            engine=self.engine,
            intake=self.intake,
            events=self.events,
            clock=self._clock,
            timeout_grace=settings.request_timeout,
        )
        self.audit = StopAudit(
            self.store, journal, self.events,
            interval=float(self.config.ctrader.stop_audit_interval_seconds), busy=self.engine.in_flight,
        )  # fmt: skip
        self.broker.subscribe(self.ledger.on_event)
        self.broker.subscribe(self.recovery.on_broker_event)
        self.broker.subscribe(self._on_broker_event)
        self.ledger.start()
        server = self.config.server
        self._web = WebState(
            engine=self.engine,
            webhook_token=server.webhook_token.get_secret_value(),
            api_token=server.api_token.get_secret_value() if server.api_token else None,
            readiness=self._readiness,
            ready=lambda: self.broker is not None and self.broker.ready,
            access=Access(
                server.allowed_ips,
                server.trust_proxy,
                server.inbound_hmac_secret.get_secret_value() if server.inbound_hmac_secret else None,
                server.signature_tolerance_seconds,
            ),
            body_timeout=float(server.client_timeout_seconds),
        )
        app = make_app(self._web)
        self._install_operator_views(app, self.broker)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            # an idle connection, or one still sending its headers, is closed after this
            keepalive_timeout=float(server.client_timeout_seconds),
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, server.host, server.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the real port when the YAML says 0
        await self.broker.start()
        self.tokens.start(self.broker)
        self.audit.start()
        self.monitor = RiskMonitor(self.engine, self.events, interval=self._monitor_interval)
        self.monitor.start()
        if self._config_path is not None:
            self.reloader = Reloader(self._config_path, lambda: self.config, self.apply_config,
                                     poll_interval=self._reload_poll)  # fmt: skip
            self.reloader.start()
        log.info("daemon_started", url=self.base_url)

    def reload(self) -> None:
        """SIGHUP: re-read the YAML now."""
        if self.reloader is None:
            log.warning("config_reload_unavailable", reason="the daemon was not started from a file")
            return
        self.reloader.request()

    def apply_config(self, config: Config, changes: list[Change] | None = None) -> None:
        """Put a reloaded configuration in force (its reloadable parts: see reload.py)."""
        previous, self.config = self.config, config
        if self.engine is not None:
            self.engine.apply_config(config)
        if config.logging.level != previous.logging.level:
            logs.set_level(config.logging.level)
        for listener in list(self.reload_listeners):
            try:
                listener(config)
            except Exception:  # one listener must not stop the others
                log.exception("reload_listener_failed")
        if self.monitor is not None:
            self.monitor.wake()

    def _on_unknown(self, signal_id: int | None) -> None:
        if self.recovery is not None:
            self.recovery.on_unknown(signal_id)

    def _renotify(self, config: Config) -> None:
        if self.notifier is not None:
            self.notifier.set_targets(config.notify)

    def _metrics(self, broker: CTraderClient) -> Metrics:
        return Metrics(
            self.store,
            broker_ready=lambda: broker.ready,
            token_expires_at=lambda: broker.token_expires_at,
            open_positions=lambda: len(broker.positions()),
            kill_switch=lambda: self._kill_switch() is not None,
        )

    def _kill_switch(self) -> str | None:
        """Why entries are refused by a kill switch now (YAML or runtime); None while off."""
        if self.config.risk.kill_switch:
            return "engaged by risk.kill_switch in the YAML; entries are refused, exits still work"
        state = self.engine.kill_switch.state(self._clock()) if self.engine is not None else None
        return None if state is None else state.describe()

    async def _trading_day(self) -> tuple[str, Decimal] | None:
        if self.engine is None:
            return None
        stats = await self.engine.losses.stats(self.config.risk, self._clock(), equity=False)
        return None if stats is None else (stats.day, stats.realized)

    def _install_operator_views(self, app: web.Application, broker: CTraderClient) -> None:
        """The read API, /metrics and the status page (issue 7) on the daemon's app."""
        assert self.metrics is not None and self._web is not None
        api.install(app, api.ApiDeps(self.store, broker))
        self.metrics.install(app)
        status_page.install(
            app,
            status_page.StatusDeps(
                store=self.store,
                broker=broker,
                api_token=self._web.api_token,
                account_id=self.config.ctrader.account_id,
                broker_detail=lambda: None if broker.ready else broker.last_error,
                kill_switch=self._kill_switch,
                token_expires_at=lambda: broker.token_expires_at,
                balance=lambda: None if (a := broker.account) is None else (a.balance, a.deposit_asset),
                trading_day=self._trading_day,
            ),
        )

    def _lots_of(self, symbol: str, volume: int) -> Decimal | None:
        info = self.broker.symbol(symbol) if self.broker is not None else None
        return None if info is None else units.volume_to_lots(volume, info)

    def _on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, ConnectionChange):
            self.events.emit(
                "broker.connected" if event.ready else "broker.disconnected",
                account_id=self.config.ctrader.account_id,
                reason=event.reason or None,
            )

    def _readiness(self) -> dict[str, Any]:
        broker = self.broker
        ready = broker is not None and broker.ready
        intake = self.intake
        return {
            "broker": "ready" if ready else "not_ready",
            "account_id": self.config.ctrader.account_id,
            "token_expires_in_seconds": self.tokens.expires_in_seconds() if self.tokens is not None else None,
            "intake": "open" if intake is not None and intake.is_open else (intake.mode if intake is not None else "closed"),
            "detail": None if ready or broker is None else broker.last_error,
        }

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop intake (503), let in-flight orders finish within a bound, then close in order."""
        log.info("daemon_stopping")
        if self._web is not None:
            self._web.accepting = False
        if self.reloader is not None:
            await self.reloader.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        if self.intake is not None:
            self.intake.close("shutting down")
        if self.recovery is not None:
            await self.recovery.stop()
        if self.engine is not None and not await self.engine.drain(drain_timeout):
            log.warning("daemon_stop_inflight_left", timeout=drain_timeout)
        if self.engine is not None:
            await self.engine.losses.stop()  # saves the day's peak equity
        if self.audit is not None:
            await self.audit.stop()
        if self.journal is not None:
            await self.journal.flush()
        if self.tokens is not None:
            await self.tokens.stop()
        if self.broker is not None:
            await self.broker.stop()
        if self.ledger is not None:
            await self.ledger.stop()
        if self.notifier is not None:
            await self.notifier.stop(grace=1.0)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.store.close()
        log.info("daemon_stopped")
