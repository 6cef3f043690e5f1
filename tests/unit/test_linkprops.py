"""model.linkprops: durations need a unit, loss is a percentage below 100. Pure."""
from __future__ import annotations

import pytest

from model.linkprops import format_duration_us, parse_duration_us, parse_loss


@pytest.mark.parametrize("text, micros", [("12ms", 12000), ("0.5ms", 500), ("250us", 250), ("250µs", 250),
                                          ("1s", 1_000_000), (" 37ms ", 37000), ("0ms", 0), ("1500ns", 2)])
def test_durations(text, micros):
    assert parse_duration_us(text) == micros


@pytest.mark.parametrize("text, fragment", [("12", "no unit"), (12, "no unit"), ("12 min", "not a duration"),
                                            ("-1ms", "not a duration"), ("11s", "maximum"),
                                            ("100ns", "resolution"), (None, "must be a duration"),
                                            (True, "must be a duration")])
def test_bad_durations(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_duration_us(text)


def test_loss():
    assert parse_loss("0.1%") == pytest.approx(0.001)
    assert parse_loss("0%") == 0
    assert parse_loss("25 %") == 0.25


@pytest.mark.parametrize("text", ["0.1", "100%", "150%", "-1%", "1 percent", None])
def test_bad_loss(text):
    with pytest.raises(ValueError):
        parse_loss(text)


def test_format_round_trips():
    for micros in (12000, 500, 1500, 37000, 0):
        assert parse_duration_us(format_duration_us(micros)) == micros
