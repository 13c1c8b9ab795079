"""Benchmarks of the dashboard: ingest, re-sync, sync under latency, page render time and memory.

Run everything with `.venv/bin/python -m bench` (add `--quick` for a fast check at 100k transactions).
Every scenario runs in its own subprocess, so timings and peak memory do not pollute each other. Data comes from
the Pluggy emulator's deterministic generator (`finance.providers.pluggy.sandbox.wire.generate_transactions`);
nothing here is part of the test run, and nothing asserts on wall-clock times.
"""
