"""The outside world a test makes for itself (never the machine's own): namespaces prefixed
`hr` + 6 hex characters standing for a machine vispd runs on, a router standing for the
Internet, a client with only a default route; veth pairs standing for real interfaces. Every
namespace, and every process left in one, is removed by `close()` (processes by PID)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from conftest import ROOT

from dataplane import netns


def sh(*argv: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    result = subprocess.run(full, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(full)} exited {result.returncode}: {result.stderr}")
    return result


def link_state(ifname: str, ns: str | None = None) -> dict:
    """What `down` must give back of an interface: name, MTU, administrative state, addresses."""
    link = json.loads(sh("ip", "-j", "link", "show", "dev", ifname, ns=ns).stdout)[0]
    addresses = json.loads(sh("ip", "-j", "addr", "show", "dev", ifname, ns=ns).stdout)[0]["addr_info"]
    return {"name": link["ifname"], "mtu": link["mtu"], "up": "UP" in link["flags"],
            "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in addresses if a["family"] == "inet")}


class World:
    """Namespaces `<prefix><6 hex><role>` (prefix `hr` unless given) and veths between them,
    all removed by `close()`."""

    def __init__(self, prefix: str = "hr") -> None:
        self.tag = prefix + uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.root_links: list[str] = []

    def ns(self, role: str) -> str:
        name = self.tag + role
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        self.namespaces.append(name)
        return name

    def veth(self, a: str, a_ns: str | None, b: str, b_ns: str | None) -> None:
        """A veth pair `a`–`b` (None: the machine's own namespace, where it is removed by name)."""
        argv = ["ip", "link", "add", "name", a] + (["netns", a_ns] if a_ns else [])
        argv += ["type", "veth", "peer", "name", b] + (["netns", b_ns] if b_ns else [])
        sh(*argv)
        if a_ns is None:
            self.root_links.append(a)

    def address(self, ns: str | None, ifname: str, cidr: str, up: bool = True) -> None:
        prefix = ["ip", "-n", ns] if ns else ["ip"]
        sh(*prefix, "addr", "add", cidr, "dev", ifname)
        if up:
            sh(*prefix, "link", "set", "dev", ifname, "up")

    def close(self) -> None:
        for name in self.namespaces:
            netns.kill_inside(name)  # the clients this test started there, by PID
            sh("ip", "netns", "del", name, check=False)
        for ifname in self.root_links:
            sh("ip", "link", "del", "dev", ifname, check=False)


def vispd_in(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The vispd CLI run in namespace `ns` (nsenter: the same mount namespace, so the
    namespaces it makes are everyone's): for vispd, `ns` is the machine's own namespace."""
    result = subprocess.run(["nsenter", f"--net={netns.path(ns)}", sys.executable, "-m", "vispd.cli", *args],
                            capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"vispd {' '.join(args)} in {ns} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result
