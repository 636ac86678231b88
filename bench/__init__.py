"""Benchmarks: `python -m bench NAME` (or `all`) prints a table and writes bench/results/NAME.json."""
