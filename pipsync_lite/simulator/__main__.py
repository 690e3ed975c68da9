"""``python -m pipsync_lite.simulator`` runs the simulator standalone."""

from __future__ import annotations

from pipsync_lite.simulator.cli import run_cli

raise SystemExit(run_cli())
