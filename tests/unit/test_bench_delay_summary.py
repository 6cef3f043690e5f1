"""bench/delay.py's summary of a packet-rate ramp (pure): the highest median rate carried
without loss, and what bounded it."""
from __future__ import annotations

from bench.delay import summarise_pps, within_fraction


def step(target: int, received_rate: float, lost: int = 0, cores: float = 0.3) -> dict:
    return {"target": target, "received_rate": received_rate, "sent_rate": received_rate, "lost": lost,
            "cores_per_100k": cores}


def test_the_line_bounds_the_ramp_at_the_first_lossy_rate():
    steps = [step(100, 100), step(100, 100), step(200, 200), step(200, 199), step(300, 280, lost=5),
             step(300, 290, lost=9), step(400, 390)]
    assert summarise_pps(steps) == {"delayed_link_pps": 199.5, "pps_bound_by": "line",
                                    "delay_cpu_per_100k_pps": 0.3}


def test_a_sender_short_of_the_top_rate_gives_a_lower_bound():
    steps = [step(100, 100), step(200, 150), step(200, 190), step(300, 170), step(300, 180)]
    summary = summarise_pps(steps)
    assert summary["delayed_link_pps"] == 175 and summary["pps_bound_by"] == "sender"


def test_every_rate_carried():
    assert summarise_pps([step(100, 99.5), step(200, 199)])["pps_bound_by"] == "rates"


def test_lost_pings_count_as_outside():
    assert within_fraction([74.0, 74.5, 76.0], sent=4, target_ms=74.0) == 0.5
