"""What the benchmarks, the labs and the tests share for measuring (pure, but for the
clock): printing progress, medians and ratios that tolerate missing runs, percentiles, and
polling until a condition holds. One home, so every figure is computed the same way."""
from __future__ import annotations

import statistics
import subprocess
import time


def say(text: str) -> None:
    """Progress for the reader of a bench or lab run (flushed: runs are long)."""
    print(text, flush=True)


def median(values, digits: int | None = None) -> float | None:
    """Median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    value = statistics.median(present)
    return round(value, digits) if digits is not None else value


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """numerator / denominator, rounded; None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values, q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def wait_for(predicate, timeout: float, interval: float = 0.05, proc: subprocess.Popen | None = None,
             what: str | None = None):
    """Poll `predicate` until it returns something true or `timeout` passes. Returns its
    last value; with `what`, raises RuntimeError instead of returning a false one (and when
    `proc` exits first)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None and what:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            if what:
                raise RuntimeError(f"{what}: not reached within {timeout} s")
            return value
        time.sleep(interval)
