"""The reference path: four plain namespaces in a line, kernel forwarding, same shaping.

vbp-plain.a - vbp-plain.b - vbp-plain.c - vbp-plain.d joined by veth pairs, /31 per link,
a /32 loopback per namespace, static routes between the loopbacks (source = loopback, as
vispd installs them), IP forwarding on. No macvlan, no nftables, ordinary ARP. Every veth
end carries what the packet meets on the sliced path's substrate device: HTB root, a class
1:1 at the link capacity and a leaf class 1:10 at the slice's guarantee with the capacity as
ceiling (the root's `default 10` puts every packet in it, where the sliced path needs a u32
source-MAC filter: that filter is part of what slicing costs).

I/O (root): creates and removes its own namespaces.
"""
from __future__ import annotations

import subprocess

from compiler.resources import shaping as tc
from dataplane import netns

NAMES = ["a", "b", "c", "d"]
PREFIX = "vbp-plain."


def ns_name(node: str) -> str:
    return PREFIX + node


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


def ip_lines(i: int) -> list[str]:
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


def build(capacity: int, rate: int) -> None:
    for node in NAMES:
        netns.create(ns_name(node))
        with netns.entered(ns_name(node)):
            netns.write_sysctl("net.ipv4.ip_forward", "1")
            netns.write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
    for i, node in enumerate(NAMES):  # in order: each veth's right end exists for the next one
        run(["ip", "-n", ns_name(node), "-batch", "-"], "\n".join(ip_lines(i)) + "\n")
    for i, node in enumerate(NAMES):
        lines = [line for dev in devices(i) for line in shaping_lines(dev, capacity, rate)]
        run(["tc", "-n", ns_name(node), "-batch", "-"], "\n".join(lines) + "\n")


def endpoints() -> tuple[tuple[str, str], tuple[str, str]]:
    """((client ns, client address), (server ns, server address))."""
    return (ns_name(NAMES[0]), loopback(0)), (ns_name(NAMES[-1]), loopback(len(NAMES) - 1))


def names() -> list[str]:
    return [ns_name(n) for n in NAMES]


def teardown() -> None:
    for name in names():
        if netns.exists(name):
            netns.remove(name)
