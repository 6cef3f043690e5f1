"""Benchmarks of vispd (run bench/dataplane.py as root); helpers live beside it.

Benches run as root and touch the kernel: each removes what it made, by name and PID.
"""
