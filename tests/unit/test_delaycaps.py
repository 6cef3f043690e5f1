"""dataplane.delaycaps' choice of mechanism and its forcing by environment. Pure (no probe)."""
from __future__ import annotations

import pytest

from dataplane import delaycaps
from dataplane.delaycaps import Capabilities, choose, forced, mechanism


def test_netem_is_preferred_then_the_delay_line_then_nothing():
    assert choose(Capabilities(netem=True, nfqueue=True)) == "netem"
    assert choose(Capabilities(netem=False, nfqueue=True)) == "delayline"
    assert choose(Capabilities(netem=False, nfqueue=False)) is None


@pytest.mark.parametrize("value, answer", [("netem", "netem"), ("delayline", "delayline"), ("none", None),
                                           (" NONE ", None)])
def test_the_environment_forces_the_answer(value, answer):
    assert forced({delaycaps.FORCE_ENV: value}) == (True, answer)


def test_unforced_and_misspelt():
    assert forced({}) == (False, None)
    with pytest.raises(ValueError, match="netem, delayline, none"):
        forced({delaycaps.FORCE_ENV: "tc"})


def test_forced_none_never_probes(monkeypatch):
    monkeypatch.setattr(delaycaps, "probe", lambda: pytest.fail("probed despite the forced answer"))
    assert mechanism({delaycaps.FORCE_ENV: "none"}) is None


def test_the_refusal_names_the_link_and_why():
    text = delaycaps.refusal("seattle-denver", Capabilities(False, False, "netem: unknown qdisc"))
    assert "seattle-denver" in text and "neither netem nor NFQUEUE" in text and "unknown qdisc" in text
