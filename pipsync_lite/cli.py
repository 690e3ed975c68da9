"""Command line: ``pipsync-lite run | demo | check-config | simulator | approve | reject | kill |
replay`` and the operator's commands (``auth``, ``accounts``, ``symbols`` in :mod:`cli_broker`;
``send``, ``signals``, ``trades``, ``positions`` in :mod:`cli_daemon`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog

from pipsync_lite import __version__, cli_broker, cli_daemon, logs, risk_commands
from pipsync_lite.config import Config, load_config
from pipsync_lite.errors import ConfigError

DEFAULT_CONFIG = os.environ.get("PIPSYNC_CONFIG", "config.yaml")
log = structlog.get_logger("pipsync_lite.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipsync-lite",
        description="Self-hosted bridge from trading alerts to one cTrader account.",
    )
    parser.add_argument("--version", action="version", version=f"pipsync-lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="YAML file (default: %(default)s)")
        return p

    with_config(sub.add_parser("run", help="run the daemon"))
    with_config(sub.add_parser("check-config", help="validate the YAML; exit 0, or print errors and exit 2"))
    demo = sub.add_parser("demo", help="the daemon against the built-in broker simulator")
    demo.add_argument("--port", type=int, default=8080, help="webhook port (0 = any free port)")
    demo.add_argument("--seed", type=int, default=1, help="simulator price seed")
    risk_commands.add_parsers(sub, with_config)
    sim = sub.add_parser("simulator", help="run the cTrader Open API simulator standalone")
    sim.add_argument("args", nargs=argparse.REMAINDER, help="--host H --port P --seed N --cert-dir DIR")
    cli_broker.register(sub, with_config)
    cli_daemon.register(sub, with_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulator"]:  # its own options; parsed by the simulator's CLI
        from pipsync_lite.simulator.cli import run_cli

        return run_cli(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "operator", None) is not None:
        return int(args.operator(args))
    if args.command == "check-config":
        return check_config(args.config)
    if args.command in risk_commands.COMMANDS:
        return risk_commands.run(args)
    if args.command == "run":
        try:
            config = load_config(args.config)
        except ConfigError as err:
            _print_config_errors(args.config, err)
            return 2
        logs.configure(config.logging.level, config.logging.format, config.secrets())
        return asyncio.run(_serve(config, Path(args.config)))
    if args.command == "demo":
        logs.configure("info", "console", ())
        return asyncio.run(_demo(args.port, args.seed))
    return 2


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as err:
        _print_config_errors(path, err)
        return 2
    print(f"{path}: OK (config version {config.version})")
    return 0


def _print_config_errors(path: str, err: ConfigError) -> None:
    print(f"{path}: invalid configuration", file=sys.stderr)
    for line in err.errors:
        print(f"  {line}", file=sys.stderr)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(config: Config, path: Path) -> int:
    from pipsync_lite.app import Daemon
    from pipsync_lite.sdnotify import Watchdog, notify

    stop = _stop_event()
    daemon = Daemon(config, config_path=path)
    watchdog = Watchdog()
    try:
        await daemon.start()
    except ConfigError as err:
        _print_config_errors("configuration", err)
        return 2
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, daemon.reload)
    notify("READY=1")
    watchdog.start()
    await stop.wait()
    notify("STOPPING=1")
    await watchdog.stop()
    await daemon.stop()
    return 0


async def _demo(port: int, seed: int) -> int:
    from pipsync_lite.app import Daemon
    from pipsync_lite.ctrader.bridge import install_reactor
    from pipsync_lite.simulator import Simulator

    install_reactor(asyncio.get_running_loop())
    stop = _stop_event()
    workdir = Path(tempfile.mkdtemp(prefix="pipsync-demo-"))
    sim = Simulator(seed=seed, host="127.0.0.1", port=0, cert_dir=workdir, tick_interval=1.0)
    await sim.start()
    daemon = Daemon(demo_config(sim, workdir, port))
    try:
        await daemon.start()
        assert daemon.broker is not None
        await daemon.broker.wait_ready(15)
        body = '{"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20, "tp_pips": 40}'
        print("pipsync-lite demo: the daemon is trading a simulated cTrader account.", flush=True)
        print(f"webhook URL: {daemon.webhook_url}", flush=True)
        api_token = daemon.config.server.api_token.get_secret_value() if daemon.config.server.api_token else ""
        print(f"status page: {daemon.base_url}/  (log in with the API token {api_token})", flush=True)
        print("try:", flush=True)
        print(
            f"  curl -s -X POST {shlex.quote(daemon.webhook_url)} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}",
            flush=True,
        )
        print("Ctrl-C stops it.", flush=True)
        await stop.wait()
    finally:
        await daemon.stop()
        await sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def demo_config(sim: object, workdir: Path, port: int) -> Config:
    """A throwaway configuration pointing at the simulator, with a random webhook token."""
    creds = sim.credentials  # type: ignore[attr-defined]
    return Config.model_validate(
        {
            "server": {
                "host": "127.0.0.1",
                "port": port,
                "webhook_token": secrets.token_urlsafe(18),
                "api_token": secrets.token_urlsafe(18),
            },
            "ctrader": {
                "host": sim.host,  # type: ignore[attr-defined]
                "port": sim.port,  # type: ignore[attr-defined]
                "ca_file": str(sim.ca_file),  # type: ignore[attr-defined]
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "access_token": creds.access_token,
                "refresh_token": creds.refresh_token,
                "account_id": creds.account_id,
            },
            "storage": {"path": str(workdir / "demo.db")},
            "risk": {"default_lots": "0.01", "max_lots": "1", "max_open_positions": 10},
        }
    )
