"""When held packets are due: the delay line's bookkeeping for one queue (pure: the caller
passes the clock; randomness comes from a `random.Random` it can seed).

Only (due time, last packet id) pairs are kept, one per batch read: every packet read in
a batch is stamped with the batch's time, and a release is one batch verdict for the last
id whose due time has come, so packets always leave in arrival order.

Jitter follows netem's declaration (`delay D jitter J`: a uniform draw in [D-J, D+J]) with
two rules of its own, both so that jitter never reorders packets:

* the delay is a step process: a new draw at the first arrival at least `period` after
  the previous draw (default max(2J, 1 ms)), so sparse probes each see an independent
  draw while packets of a burst share one (a queue on a real path is correlated in time
  too); drawing per packet would need per-packet work and, under load, would make the
  FIFO rule below pin every packet near D+J;
* FIFO: a packet is never due before the one ahead of it (due = max(previous due,
  arrival + draw)). After a downward step, packets arriving within the step's size leave
  together with the last packet of the previous step, as from a draining queue.
"""
from __future__ import annotations

import random
from collections import deque

MIN_JITTER_PERIOD_NS = 1_000_000


class Schedule:
    """Due times of the batches held in one queue."""

    def __init__(self, delay_ns: int, jitter_ns: int = 0, period_ns: int | None = None,
                 rng: random.Random | None = None):
        self.retune(delay_ns, jitter_ns, period_ns)
        self._rng = rng or random.Random()
        self._offset_ns = 0
        self._pending: deque[list[int]] = deque()  # [due_ns, last_id], due times non-decreasing
        self._last_due_ns = 0
        self.last_seen_id: int | None = None

    def retune(self, delay_ns: int, jitter_ns: int = 0, period_ns: int | None = None) -> None:
        """New declarations for packets that arrive from now on; those held keep their due
        times (FIFO still holds: a shorter delay makes the next packets wait for them)."""
        if delay_ns < 0 or jitter_ns < 0:
            raise ValueError("delay and jitter must not be negative")
        if jitter_ns > delay_ns:
            raise ValueError("jitter must not exceed the delay (a packet cannot leave before it came)")
        self.delay_ns, self.jitter_ns = delay_ns, jitter_ns
        self.period_ns = period_ns if period_ns is not None else max(2 * jitter_ns, MIN_JITTER_PERIOD_NS)
        self._next_draw_ns = None

    def _draw(self, now_ns: int) -> int:
        if not self.jitter_ns:
            return 0
        if self._next_draw_ns is None or now_ns >= self._next_draw_ns:
            self._offset_ns = self._rng.randint(-self.jitter_ns, self.jitter_ns)
            self._next_draw_ns = now_ns + self.period_ns
        return self._offset_ns

    def arrive(self, now_ns: int, last_id: int) -> int:
        """Packets up to `last_id` were read at `now_ns`; returns their due time."""
        due = max(self._last_due_ns, now_ns + self.delay_ns + self._draw(now_ns))
        if self._pending and self._pending[-1][0] == due:
            self._pending[-1][1] = last_id
        else:
            self._pending.append([due, last_id])
        self._last_due_ns = due
        self.last_seen_id = last_id
        return due

    def release(self, horizon_ns: int) -> tuple[int, int] | None:
        """(last id, its due time) of everything due by `horizon_ns`, removed; or None."""
        released = None
        pending = self._pending
        while pending and pending[0][0] <= horizon_ns:
            released = pending.popleft()
        return (released[1], released[0]) if released else None

    def next_due(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)
