"""dataplane.delaysched: due times, batch releases, and jitter that never reorders. Pure."""
from __future__ import annotations

import random
import statistics

import pytest

from dataplane.delaysched import Schedule

MS = 1_000_000


def test_fixed_delay_releases_each_batch_when_due():
    schedule = Schedule(delay_ns=10 * MS)
    assert schedule.arrive(0, last_id=5) == 10 * MS
    assert schedule.arrive(2 * MS, last_id=9) == 12 * MS
    assert schedule.release(10 * MS - 1) is None
    assert schedule.release(10 * MS) == (5, 10 * MS)
    assert schedule.next_due() == 12 * MS
    assert schedule.release(20 * MS) == (9, 12 * MS)
    assert schedule.release(30 * MS) is None and len(schedule) == 0
    assert schedule.last_seen_id == 9


def test_one_release_covers_every_due_batch():
    schedule = Schedule(delay_ns=MS)
    for t, last in ((0, 1), (10, 4), (20, 7)):
        schedule.arrive(t, last)
    assert schedule.release(MS + 20) == (7, MS + 20)


def test_batches_due_at_the_same_time_merge():
    schedule = Schedule(delay_ns=MS)
    schedule.arrive(5, 1)
    schedule.arrive(5, 2)
    assert len(schedule) == 1 and schedule.release(MS + 5) == (2, MS + 5)


@pytest.mark.parametrize("delay, jitter", [(-1, 0), (1, -1), (1, 2)])
def test_impossible_declarations(delay, jitter):
    with pytest.raises(ValueError):
        Schedule(delay, jitter)


def sparse_offsets(delay_ns: int, jitter_ns: int, count: int = 4000, gap_ns: int = 10 * MS) -> list[int]:
    schedule = Schedule(delay_ns, jitter_ns, rng=random.Random(7))
    return [schedule.arrive(i * gap_ns, i) - i * gap_ns - delay_ns for i in range(count)]


def test_jitter_is_uniform_within_the_declared_bounds_for_sparse_packets():
    offsets = sparse_offsets(20 * MS, 2 * MS)
    assert min(offsets) >= -2 * MS and max(offsets) <= 2 * MS
    assert abs(statistics.mean(offsets)) < 0.1 * MS
    assert statistics.pstdev(offsets) == pytest.approx(2 * MS / 3 ** 0.5, rel=0.05)  # uniform: J/sqrt(3)
    deciles = statistics.quantiles(offsets, n=10)
    assert deciles[0] == pytest.approx(-1.6 * MS, abs=0.15 * MS)
    assert deciles[-1] == pytest.approx(1.6 * MS, abs=0.15 * MS)


def test_jitter_never_reorders_under_load():
    schedule = Schedule(20 * MS, 5 * MS, rng=random.Random(3))
    dues = [schedule.arrive(t * 50_000, t) for t in range(20000)]  # a batch every 50 us
    assert dues == sorted(dues)
    offsets = [due - t * 50_000 - 20 * MS for t, due in enumerate(dues)]
    assert min(offsets) >= -5 * MS and max(offsets) <= 5 * MS


def test_a_draw_lasts_one_period():
    schedule = Schedule(20 * MS, 5 * MS, period_ns=10 * MS, rng=random.Random(1))
    first = schedule.arrive(0, 1) - 20 * MS
    assert schedule.arrive(9 * MS, 2) - 9 * MS - 20 * MS >= first  # same draw (or FIFO-held)
    draws = {schedule.arrive(t * 10 * MS, t) - t * 10 * MS for t in range(1, 50)}
    assert len(draws) > 40  # a new draw each period


def test_default_period_is_twice_the_jitter_but_at_least_a_millisecond():
    assert Schedule(10 * MS, 2 * MS).period_ns == 4 * MS
    assert Schedule(10 * MS, 100_000).period_ns == MS
