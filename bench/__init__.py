"""Benchmarks of vispd (run bench/dataplane.py as root); helpers live beside it."""
