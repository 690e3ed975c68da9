"""Benchmarks of the alert-to-order path (issue 8): ``python -m tests.benchmarks``; not pytest tests.

Processes: this one is the load generator; the simulator and a TLS tap in front of it (the
"wire" where orders are timed) run in their own processes (``broker.py``), and so does each
subject: the daemon, the floor, hello-world (``subject.py``). See README, "Performance".
"""
