"""Helpers for the pure-core tests: small topologies written inline, no root, no kernel."""
from __future__ import annotations

import os
import textwrap

from compiler.loader import load_topology
from compiler.runtime import Runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABILENE = os.path.join(ROOT, "topologies", "abilene.yaml")
BAD_DIR = os.path.join(ROOT, "tests", "data", "bad")


def topology(text: str, path: str = "inline.yaml"):
    """Load a topology from YAML text (dedented), reported as `path`."""
    return load_topology(path, textwrap.dedent(text))


def abilene_full_text() -> str:
    with open(ABILENE, encoding="utf-8") as handle:
        return handle.read()


def abilene_text() -> str:
    """abilene.yaml without its providers, egress and access: the core data path these tests
    are about (egress and access planning have tests of their own, on the full file)."""
    text = abilene_full_text()
    start, end = text.index("# The seed's exchange points"), text.index("slices:")
    text = text[:start] + text[end:]
    text = text[:text.index("# Ways into plb")]
    egress = "    egress: [mae-east, mae-west]\n"
    assert text.count(egress) == 1
    return text.replace(egress, "")


def edited_abilene(old: str, new: str, count: int = 1):
    """Abilene with one textual edit (which must apply exactly `count` times)."""
    text = abilene_text()
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times in abilene.yaml"
    return load_topology(ABILENE, text.replace(old, new))


# A ring a-b-c-d-a with one slice per routing mode, for routing and check tests;
# a-b-c is the cheap way from a to c (2), a-d-c the dear one (6)
RING = """\
    name: ring
    asn: 64512
    address-space: [198.18.0.0/16]
    nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
    links:
      - {between: [a, b], bandwidth: 1G, cost: 1}
      - {between: [b, c], bandwidth: 1G, cost: 1}
      - {between: [c, d], bandwidth: 1G, cost: 5}
      - {between: [a, d], bandwidth: 1G, cost: 1}
    slices:
      - {name: st, nodes: all, links: all, bandwidth: 100M}
      - name: oa
        nodes: all
        links: all
        bandwidth: 100M
        routing: ospf
        pseudo-devices: [{node: c, type: tun, name: oa0}]
      - {name: ob, nodes: all, links: all, bandwidth: 100M, routing: ospf, ospf: {hello: 2, dead: 7, retransmit: 3}}
      - {name: nn, nodes: all, links: all, bandwidth: 100M, routing: none}
"""
PATHS = Runtime.for_topology("ring")  # /var/lib/vispd/ring/run, /run/vispd/ring
