"""The benchmark script (``python -m tests.benchmarks``) still runs end to end and prints its table.

Numbers are not asserted: the suite is a measurement, not a timed test. This only keeps it from
rotting: one ``--quick`` run with tiny counts, every section present, every row measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_run_prints_all_five_benchmarks_with_measured_rows() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for heading in ("### 1. Alert → order on the wire", "### 2. Alert → HTTP answer", "### 3. Sustained ingest",
                    "### 4. Broker pacing", "### 5. Footprint"):
        assert heading in out, out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ")]
    latency = [r for r in rows if len(r) == 13 and r[2].strip() in {"floor", "daemon, unpaced", "daemon, paced 50/s"}]
    assert len(latency) == 15, out  # 5 loads × 3 subjects
    for row in latency:
        alerts, answered, on_wire, p50 = (row[i].strip() for i in (3, 4, 5, 6))
        assert alerts == answered == on_wire and p50 != "-", row
    ingest = [r for r in rows if "hello world" in r[1] or "daemon, guard rejects" in r[1]]
    assert len(ingest) == 2 and all(int(r[3]) > 0 for r in ingest), out
    phases = [r for r in rows if r[1].strip() in {"accepted", "stored"}]
    assert len(phases) == 10 and "RSS idle" in out and "database per 10k" in out, out


def test_the_day_statistics_benchmark_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.losses", "--quick"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [r[1].strip() for r in rows[1:]] == ["0", "200"], result.stdout
    assert all(r[2].strip() != "-" for r in rows[1:]) and "with the trade log followed" in result.stdout
