"""The two-provider lab of the silent-failure bench and test (bench/failover.py,
tests/netns/test_bfd_failover.py): its topology, and a provider that goes silent. I/O (root)
for `silence`; the rest is text.

Nodes a - b, provider p1 at a and p2 at b, slice s on both egressing through both (BFD on by
default: 100 ms x 3; BGP hold time 9 s), so sliver a leaves by p1. A provider goes silent
with an nftables table in its namespace whose netdev ingress and egress chains drop
everything on its device facing the vISP: no NOTIFICATION, no link event on our side.
"""
from __future__ import annotations

import subprocess

from model.naming import lab_ns, substrate_ifname

SLICE_PREFIX = "198.18.0.0/22"
DROP_TABLE = "hfsilent"
NODE = {"p1": "a", "p2": "b"}   # where each provider attaches


def topology(name: str, p1_daemon: str = "bird") -> str:
    """The lab's topology; p1 emulated by BIRD or FRR (bfdd beside bgpd and zebra)."""
    return f"""\
# two egress nodes, a provider at each; sliver a leaves by p1.
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes:
  - {{name: a, site: a}}
  - {{name: b, site: b}}
links:
  - {{between: [a, b], bandwidth: 10G, cost: 1}}
providers:
  - {{name: p1, node: a, asn: 65101, bandwidth: 10G, peering: 192.0.2.0/28, lab-daemon: {p1_daemon}}}
  - {{name: p2, node: b, asn: 65102, bandwidth: 10G, peering: 192.0.2.16/28}}
slices:
  - {{name: s, prefix: {SLICE_PREFIX}, nodes: all, links: all, bandwidth: 1G, egress: [p1, p2]}}
"""


def provider_device(provider: str) -> str:
    """The provider's end of its access link (each node is its own site)."""
    node = NODE[provider]
    return substrate_ifname(node, node)


def silence(topology_name: str, provider: str, on: bool) -> None:
    """The provider drops everything on its access link, both ways (or stops dropping)."""
    ns = lab_ns(topology_name, provider)
    if on:
        device = provider_device(provider)
        rules = (f"table netdev {DROP_TABLE} {{\n"
                 f"  chain in {{ type filter hook ingress device \"{device}\" priority -500; policy drop; }}\n"
                 f"  chain out {{ type filter hook egress device \"{device}\" priority -500; policy drop; }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True,
                       capture_output=True)
    else:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", DROP_TABLE], check=False,
                       capture_output=True)
