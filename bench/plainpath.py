"""The reference path: four plain namespaces in a line, kernel forwarding, same shaping.

PREFIX.a - PREFIX.b - PREFIX.c - PREFIX.d (`PlainPath(prefix)`: each bench names its own,
so two benches never meet) joined by veth pairs, /31 per link,
a /32 loopback per namespace, static routes between the loopbacks (source = loopback, as
vispd installs them), IP forwarding on. No macvlan, no nftables, ordinary ARP. Every veth
end carries what the packet meets on the sliced path's substrate device: HTB root, a class
1:1 at the link capacity and a leaf class 1:10 at the slice's guarantee with the capacity as
ceiling (the root's `default 10` puts every packet in it, where the sliced path needs a
classifier — the BPF guard's skb->priority, or a u32 source-MAC filter under the nftables
fallback: that is part of what slicing costs).

I/O (root): creates and removes its own namespaces.
"""
from __future__ import annotations

import subprocess

from compiler.resources import shaping as tc
from dataplane import netns

NAMES = ["a", "b", "c", "d"]


def loopback(i: int) -> str:
    return f"10.255.0.{i + 1}"


def link_ends(i: int) -> tuple[str, str]:
    """Addresses of link i (between NAMES[i] and NAMES[i+1]): left end, right end."""
    return f"10.0.{i}.0", f"10.0.{i}.1"


def shaping_lines(dev: str, capacity: int, rate: int) -> list[str]:
    q = tc._quantum  # the same quantum rule as vispd's shaping
    return [
        f"qdisc replace dev {dev} root handle 1: htb default 10",
        f"class replace dev {dev} parent 1: classid 1:1 htb rate {capacity}bit ceil {capacity}bit quantum {q(capacity)}",
        f"class replace dev {dev} parent 1:1 classid 1:10 htb rate {rate}bit ceil {capacity}bit quantum {q(rate)}",
    ]


def ip_lines(i: int, ns_name) -> list[str]:
    """ip batch for NAMES[i]: its loopback, its link ends, routes to the far loopbacks."""
    lines = ["link set lo up", f"address add {loopback(i)}/32 dev lo"]
    if i + 1 < len(NAMES):
        nxt = ns_name(NAMES[i + 1])
        lines.append(f"link add to-{NAMES[i + 1]} up type veth peer name to-{NAMES[i]} netns {nxt}")
        lines.append(f"address add {link_ends(i)[0]}/31 dev to-{NAMES[i + 1]}")
    if i > 0:
        lines.append(f"link set to-{NAMES[i - 1]} up")
        lines.append(f"address add {link_ends(i - 1)[1]}/31 dev to-{NAMES[i - 1]}")
    for j in range(len(NAMES)):
        if j < i:
            lines.append(f"route add {loopback(j)}/32 via {link_ends(i - 1)[0]} src {loopback(i)}")
        elif j > i:
            lines.append(f"route add {loopback(j)}/32 via {link_ends(i)[1]} src {loopback(i)}")
    return lines


def devices(i: int) -> list[str]:
    return ([f"to-{NAMES[i - 1]}"] if i > 0 else []) + ([f"to-{NAMES[i + 1]}"] if i + 1 < len(NAMES) else [])


def run(argv: list[str], stdin: str) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


class PlainPath:
    """The four namespaces `prefix`a .. `prefix`d (the prefix ends with a dot)."""

    def __init__(self, prefix: str = "vbp-plain."):
        self.prefix = prefix

    def ns_name(self, node: str) -> str:
        return self.prefix + node

    def build(self, capacity: int, rate: int) -> None:
        for node in NAMES:
            netns.create(self.ns_name(node))
            with netns.entered(self.ns_name(node)):
                netns.write_sysctl("net.ipv4.ip_forward", "1")
                netns.write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        for i, node in enumerate(NAMES):  # in order: each veth's right end exists for the next one
            run(["ip", "-n", self.ns_name(node), "-batch", "-"], "\n".join(ip_lines(i, self.ns_name)) + "\n")
        for i, node in enumerate(NAMES):
            lines = [line for dev in devices(i) for line in shaping_lines(dev, capacity, rate)]
            run(["tc", "-n", self.ns_name(node), "-batch", "-"], "\n".join(lines) + "\n")

    def endpoints(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((client ns, client address), (server ns, server address))."""
        return (self.ns_name(NAMES[0]), loopback(0)), (self.ns_name(NAMES[-1]), loopback(len(NAMES) - 1))

    def names(self) -> list[str]:
        return [self.ns_name(n) for n in NAMES]

    def leftovers(self) -> list[str]:
        return netns.list_names(self.prefix)

    def teardown(self) -> None:
        for name in self.names():
            if netns.exists(name):
                netns.remove(name)
