"""How BFD shows (pure): `vispd bgp status`'s bfd column and notes at the borders, and
`vispd check`'s judgement: a provider whose BGP session is Established while its BFD is
not up is a failure; a provider without BFD is not."""
from __future__ import annotations

from vispd.bgpstatus import bfd_cell, render_bgp_status
from vispd.check_bgp import bfd_problems

NOW = 1000.0


def border(bgp: str = "up", bfd: dict | None = None) -> dict:
    provider = {"kind": "provider", "name": "p1", "state": bgp, "since": NOW - 60, "prefixes_in": 3,
                "prefixes_out": 1, "last_down_reason": ""}
    if bfd is not None:
        provider["bfd"] = bfd
    return {"role": "border", "slice": "border", "node": "a", "neighbors": {
        "p1": provider,
        "slice s": {"kind": "slice", "slice": "s", "name": "s", "state": "up", "since": NOW - 60}}}


UP = {"state": "up", "since": NOW - 50, "detect_ms": 300, "failures": 0}
FAILED = {"state": "down", "since": NOW - 4, "detect_ms": 300, "failures": 1,
          "diagnostic": "control detection time expired"}


def test_the_bfd_column_shows_state_and_detection_time():
    assert bfd_cell({"bfd": UP}) == "up 300ms"
    assert bfd_cell({"bfd": FAILED}) == "down" and bfd_cell({"bfd": {"state": "off"}}) == "off"
    assert bfd_cell({}) == "-"                                    # a helper from before BFD


def test_status_says_why_bfd_is_down(monkeypatch):
    monkeypatch.setattr("vispd.bgpstatus.time.time", lambda: NOW)
    text = render_bgp_status([border("down", FAILED)])
    header, provider = text.splitlines()[1:3]
    assert header.rstrip().endswith("bfd") and provider.rstrip().endswith("down")
    assert text.splitlines()[4] == "  a: provider p1: BFD down for 4s (control detection time expired)"
    assert "BFD" not in render_bgp_status([border("up", UP)]).split("\n", 3)[3]   # no note when up
    unknown = render_bgp_status([border("up", {"state": "unknown", "since": NOW - 1,
                                               "problem": "bfdd's control socket /x: refused"})])
    assert "BFD unknown for 1s (bfdd's control socket /x: refused)" in unknown


def test_check_fails_a_provider_whose_bgp_is_up_and_bfd_is_not():
    assert bfd_problems(border("up", UP)) == []
    assert bfd_problems(border("up", {"state": "off"})) == []
    assert bfd_problems(border("down", FAILED)) == []             # the session check reports that one
    assert bfd_problems(border("up")) == []                       # a helper from before BFD
    (problem,) = bfd_problems(border("up", {"state": "down", "failures": 0}))
    assert problem.startswith("border a: provider p1: BGP Established but BFD down")
    assert "does the provider run BFD?" in problem and "bfd: false" in problem
    (problem,) = bfd_problems(border("up", {"state": "unknown", "problem": "bfdd is gone"}))
    assert "BFD unknown (bfdd is gone)" in problem
    speaker = {"slice": "s", "node": "a", "neighbors": {"border": {"state": "up", "bfd": {"state": "down"}}}}
    assert bfd_problems(speaker) == []
