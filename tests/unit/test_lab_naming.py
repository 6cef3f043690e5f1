"""Readable lab host names, the lab CLI's line parsing, and failed links as controller state."""
from __future__ import annotations

import pytest

from model.naming import host_names
from vispd.state import TopologyState


def test_hosts_are_named_node_slice_node_and_lab_name():
    names = host_names(["vispd.ab.seattle", "vispd.ab.seattle.plb", "vispd.ab.+mae-east", "vispd.ab.+internet"])
    assert names == {"vispd.ab.seattle": "seattle", "vispd.ab.seattle.plb": "plb-seattle",
                     "vispd.ab.+mae-east": "mae-east", "vispd.ab.+internet": "internet"}


def test_clashing_names_keep_a_distinguishing_prefix():
    # node "plb-a" clashes with slice plb's sliver on node "a"; lab host "a" with node "a"
    names = host_names(["vispd.t.plb-a", "vispd.t.a.plb", "vispd.t.a", "vispd.t.+a"])
    assert names["vispd.t.a.plb"] == "plb-a"
    assert names["vispd.t.plb-a"] == "node-plb-a"
    assert names["vispd.t.a"] == "node-a"
    assert names["vispd.t.+a"] == "lab-a"
    assert len(set(names.values())) == 4


def test_foreign_names_are_ignored():
    assert host_names(["other", "vispd.x"]) == {}


def test_failed_links_round_trip_sorted(tmp_path, monkeypatch):
    monkeypatch.setenv("VISPD_STATE_DIR", str(tmp_path))
    state = TopologyState("t")
    assert state.failed_links() == frozenset()
    state.set_failed_links(frozenset({("b", "a"), ("c", "d")}))
    assert state.failed_links() == frozenset({("a", "b"), ("c", "d")})
    state.set_failed_links(frozenset())
    assert state.failed_links() == frozenset()


def test_lab_cli_splits_words_at_whitespace_and_skips_comments():
    pytest.importorskip("mininet.cli", reason="the lab CLI needs the mininet package")
    from vispd.lab_cli import VispdCLI

    parse = VispdCLI.parseline
    assert parse(None, "plb-seattle ping -c1 plb-new-york") == ("plb-seattle", "ping -c1 plb-new-york",
                                                                 "plb-seattle ping -c1 plb-new-york")
    assert parse(None, "  # a comment") == (None, None, "")
    assert parse(None, "?linkdown") == ("help", "linkdown", "help linkdown")
