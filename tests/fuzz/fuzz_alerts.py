"""Coverage-guided fuzzing of the alert parsers with atheris (libFuzzer).

Run: ``python tests/fuzz/fuzz_alerts.py CORPUS_DIR -runs=100000`` (any libFuzzer flag works;
an empty corpus directory is seeded with one alert of each dialect). The property:
``parse_signal`` raises nothing but ``SignalError``, whatever the bytes. ``tests/test_fuzz.py``
runs a bounded session.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pipsync_lite"]):
    from pipsync_lite.errors import SignalError
    from pipsync_lite.signals import parse_signal

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SEEDS = (
    b'{"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl": 1.085, "tp": 1.095, "id": "x-1"}',
    b"command=PLACE; action=BUY; instrument=EURUSD; qty=0.1; sl_pips=20;",
    b"1234567,buy,EURUSD,risk=1,sl=20,tp=40",
    b'{"action": "close_all", "time": "2026-03-02T11:59:00Z", "expiry": 60, "tif": "gtd"}',
)


def one_input(data: bytes) -> None:
    try:
        parse_signal(data, NOW)
    except SignalError:
        pass


def main() -> None:
    for arg in sys.argv[1:]:
        corpus = Path(arg)
        if not arg.startswith("-") and corpus.is_dir() and not any(corpus.iterdir()):
            for number, seed in enumerate(SEEDS):
                (corpus / f"seed-{number}").write_bytes(seed)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
