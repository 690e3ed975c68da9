"""``python -m pipsync_lite`` runs the command line."""

from pipsync_lite.cli import main

raise SystemExit(main())
