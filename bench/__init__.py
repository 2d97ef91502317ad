"""Benchmarks: `python -m bench.<name> [--json]` prints figures; nothing here is a timed test."""
