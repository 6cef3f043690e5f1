"""Count the kernel objects in a set of namespaces (to check the floor makes what `up` makes).

Per namespace: devices other than lo, IPv4 addresses other than 127.0.0.1, permanent
neighbours, routes with protocol 77, HTB root qdiscs, HTB classes, tc filters under HTB
(as netlink dump entries: u32 also lists its hash tables, the same on both sides),
nftables tables, and vispd's BPF programs (named like the BPF guard's, on any hook).

I/O: reads the kernel's objects in the given namespaces (changes nothing).
"""
from __future__ import annotations

import socket
import subprocess
from collections import Counter

from pyroute2 import IPRoute

from dataplane import netns
from dataplane.bpf import hooks as bpf_hooks, node as bpf_node

RTPROTO = 77
NUD_PERMANENT = 0x80
ROOT = 0xFFFFFFFF


def count_tc(ipr: IPRoute, index: int) -> Counter:
    counts: Counter = Counter()
    qdiscs = ipr.get_qdiscs(index=index)
    counts["htb_qdiscs"] += sum(1 for q in qdiscs if q.get_attr("TCA_KIND") == "htb" and q["parent"] == ROOT)
    if counts["htb_qdiscs"]:
        counts["htb_classes"] += len(ipr.get_classes(index=index))
        counts["tc_filters"] += len(ipr.get_filters(index=index, parent=0x10000))
    return counts


def count_nft_tables(ns: str) -> int:
    with netns.entered(ns):
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("table"))


def census_ns(ns: str, with_nft: bool) -> Counter:
    counts: Counter = Counter(namespaces=1)
    with netns.entered(ns):
        ipr = IPRoute()
    try:
        for link in ipr.get_links():
            if link.get_attr("IFLA_IFNAME") == "lo":
                continue
            counts["devices"] += 1
            counts += count_tc(ipr, link["index"])
        counts["addresses"] += sum(1 for a in ipr.get_addr(family=socket.AF_INET)
                                   if a.get_attr("IFA_ADDRESS") != "127.0.0.1")
        counts["neighbours"] += sum(1 for n in ipr.get_neighbours(family=socket.AF_INET)
                                    if n["state"] & NUD_PERMANENT)
        counts["routes"] += sum(1 for r in ipr.get_routes(family=socket.AF_INET, table=254)
                                if r["proto"] == RTPROTO)
    finally:
        ipr.close()
    if with_nft:
        counts["nft_tables"] += count_nft_tables(ns)
        counts["bpf_programs"] += sum(len(bpf_node.observe(ns, mode)) for mode in bpf_hooks.MODES)
    return counts


def census(names: list[str], node_names: set[str]) -> dict[str, int]:
    total: Counter = Counter()
    for ns in names:
        total += census_ns(ns, ns in node_names)
    return dict(sorted(total.items()))
