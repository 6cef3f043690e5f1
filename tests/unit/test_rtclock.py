"""dataplane.rtclock: the absolute-deadline timer fires at (never before) its deadline, and
the real-time policy steps back when its process saturates a core. No root needed: the
policy's scheduler calls are replaced, so the test process keeps its own policy."""
from __future__ import annotations

import select
import time

import pytest

from dataplane import rtclock


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    poller = select.epoll()
    poller.register(fd, select.EPOLLIN)
    try:
        return bool(poller.poll(timeout))
    finally:
        poller.close()


def test_the_timer_fires_at_its_absolute_deadline_not_before():
    timer = rtclock.DeadlineTimer()
    try:
        deadline = time.monotonic_ns() + 3_000_000
        timer.arm(deadline)
        assert wait_readable(timer.fd)
        assert time.monotonic_ns() >= deadline
        timer.clear()
        assert timer.armed_at is None and not wait_readable(timer.fd, 0.01)
    finally:
        timer.close()


def test_rearming_moves_the_deadline_and_disarm_cancels():
    timer = rtclock.DeadlineTimer()
    try:
        timer.arm(time.monotonic_ns() + 1_000_000)
        later = time.monotonic_ns() + 50_000_000
        timer.arm(later)
        assert not wait_readable(timer.fd, 0.02)  # the first deadline is gone
        timer.disarm()
        assert not wait_readable(timer.fd, 0.05)
        timer.arm(1)  # a deadline in the past fires at once
        assert wait_readable(timer.fd, 0.5)
    finally:
        timer.close()


class FakeClock:
    def __init__(self):
        self.cpu_ns = 0


@pytest.fixture
def policy(monkeypatch):
    clock = FakeClock()
    calls = []
    monkeypatch.setattr(rtclock.RealtimePolicy, "_cpu_ns", staticmethod(lambda: clock.cpu_ns))
    made = rtclock.RealtimePolicy("auto", high=0.9, low=0.7)

    def record(realtime: bool) -> None:
        if realtime != made.realtime:
            calls.append(realtime)
            made.realtime = realtime
    monkeypatch.setattr(made, "_set", record)
    made.clock, made.calls = clock, calls
    return made


def spend(policy, share: float, start: int, seconds: float = 1.0) -> int:
    policy.clock.cpu_ns += int(share * seconds * 1e9)
    now = start + int(seconds * 1e9)
    policy.check(now)
    return now


def test_auto_steps_back_when_saturated_and_returns_below_low(policy):
    policy.start()
    assert policy.calls == [True]
    now = policy._last[0]
    now = spend(policy, 0.8, now)  # between low and high: stays
    assert policy.calls == [True]
    now = spend(policy, 0.97, now)
    assert policy.calls == [True, False]
    now = spend(policy, 0.8, now)  # hysteresis: not back yet
    assert policy.calls == [True, False]
    spend(policy, 0.5, now)
    assert policy.calls == [True, False, True]


def test_off_never_goes_realtime_and_on_never_steps_back(policy):
    policy.mode = "off"
    policy.start()
    spend(policy, 0.1, policy._last[0])
    assert policy.calls == []
    policy.mode = "on"
    policy.start()
    spend(policy, 1.0, policy._last[0])
    assert policy.calls == [True]


def test_unknown_mode():
    with pytest.raises(ValueError):
        rtclock.RealtimePolicy("fifo")
