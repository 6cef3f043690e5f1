"""Reading what vispd owns in the kernel for a topology, as neutral views (no decisions).

Ownership is recognised by the markers `dataplane.host.KernelHost` writes: `lo`'s ifalias
(or the state journal) for namespaces, each device's ifalias, route protocol 77 for
routes; addresses and neighbours count only on owned devices. Which of it matches the plan
is each resource kind's call (`observe` in compiler.resources); this module only reads.

I/O: reads the kernel through the host's sockets (changes nothing).
"""
from __future__ import annotations

import socket

from pyroute2.netlink.exceptions import NetlinkError

from compiler.resources import VISPD_RTPROTO
from compiler.resources.host import DeviceView, NamespaceView
from model.naming import NS_PREFIX, parse_ns

from . import netns
from .fib import Fib
from .host import FR_ACT_BLACKHOLE, MAIN_TABLE, NUD_PERMANENT, KernelHost

IFF_UP = 0x1
IFF_NOARP = 0x80


def tokens_of(alias: str | None, marker: str) -> dict[str, str] | None:
    """Parse an ownership alias; None when it is not ours."""
    if not alias:
        return None
    parts = alias.split()
    if not parts or parts[0] != marker:
        return None
    return dict(p.split("=", 1) for p in parts[1:] if "=" in p)


class KernelReader:
    """The namespaces of one topology and what they hold, read through a `KernelHost`'s
    sockets (and recorded into its marker cache, which later marks merge into)."""

    def __init__(self, host: KernelHost, known_namespaces=()):
        self.host = host
        self.known = set(known_namespaces)  # the state journal: ours even without a marker
        self.unowned: list[str] = []
        self.broken: set[str] = set()

    def namespaces(self) -> list[str]:
        """Owned namespaces of this topology (marker on lo, or in the journal)."""
        owned, self.unowned = [], []
        host = self.host
        for name in netns.list_names(f"{NS_PREFIX}{host.topology}."):
            parsed = parse_ns(name)
            if not parsed or parsed[0] != host.topology:
                continue
            try:
                tokens = tokens_of(host.raw(name).alias("lo"), host.marker)
            except (OSError, NetlinkError, IndexError):
                # A name whose bind mount never happened (a run killed in between).
                if name in self.known:
                    self.broken.add(name)
                    owned.append(name)
                else:
                    self.unowned.append(name)
                continue
            if tokens is None and name not in self.known:
                self.unowned.append(name)
                host.drop_sockets(name)
                continue
            host.aliases[(name, "lo")] = tokens or {}
            owned.append(name)
        return owned

    def view(self, ns: str) -> NamespaceView:
        _, node, slice_name = parse_ns(ns)
        if ns in self.broken:
            return NamespaceView(ns, node, slice_name, {}, broken=True)
        ipr = self.host.ipr(ns)
        devices, owned = self._devices(ns, ipr)
        addresses = []
        for msg in ipr.get_addr(family=socket.AF_INET):
            ifname = owned.get(msg["index"])
            if ifname is not None:
                addresses.append((ifname, f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"))
        neighbours = []
        for msg in ipr.get_neighbours(family=socket.AF_INET):
            ifname = owned.get(msg["ifindex"])
            if ifname is not None and msg["state"] & NUD_PERMANENT:
                neighbours.append((ifname, msg.get_attr("NDA_DST"), msg.get_attr("NDA_LLADDR") or ""))
        routes = self._routes(ns)
        if slice_name is None:  # node namespaces: the border's policy tables and rules too
            routes += self._policy_routes(ipr)
        return NamespaceView(ns, node, slice_name, self.host.aliases.get((ns, "lo"), {}), devices=tuple(devices),
                             addresses=tuple(addresses), neighbours=tuple(neighbours), routes=routes,
                             rules=self._rules(ipr) if slice_name is None else ())

    def _devices(self, ns: str, ipr) -> tuple[list[DeviceView], dict[int, str]]:
        devices, owned = [], {}
        for link in ipr.get_links():
            ifname = link.get_attr("IFLA_IFNAME")
            if ifname == "lo":
                owned[link["index"]] = "lo"
                continue
            tokens = tokens_of(link.get_attr("IFLA_IFALIAS"), self.host.marker)
            if tokens is None:
                continue
            owned[link["index"]] = ifname
            self.host.aliases[(ns, ifname)] = tokens
            devices.append(DeviceView(
                ifname=ifname, kind=link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "", tokens=tokens,
                mtu=link.get_attr("IFLA_MTU"), up=bool(link["flags"] & IFF_UP),
                mac=link.get_attr("IFLA_ADDRESS") or "", noarp=bool(link["flags"] & IFF_NOARP)))
        return devices, owned

    def _routes(self, ns: str) -> tuple[tuple[int, str, str], ...]:
        """vispd's static routes of the main table (protocol 77, metric 0), read with one
        filtered raw dump (a sliver's table may hold a full BGP table beside them)."""
        with netns.entered(ns):
            fib = Fib(VISPD_RTPROTO, MAIN_TABLE, 0)
        try:
            return tuple((MAIN_TABLE, dst, gateway or "") for dst, gateway in fib.routes().items())
        finally:
            fib.close()

    @staticmethod
    def _policy_routes(ipr) -> tuple[tuple[int, str, str], ...]:
        """vispd's routes in other tables than the main one (the border's per-provider tables)."""
        found = []
        for msg in ipr.get_routes(family=socket.AF_INET):  # every table (table=0 would match none)
            table = msg.get_attr("RTA_TABLE") or msg["table"]
            if msg["proto"] != VISPD_RTPROTO or table in (MAIN_TABLE, 255):
                continue
            dst = msg.get_attr("RTA_DST")
            found.append((table, f"{dst or '0.0.0.0'}/{msg['dst_len']}", msg.get_attr("RTA_GATEWAY") or ""))
        return tuple(found)

    @staticmethod
    def _rules(ipr) -> tuple[tuple[str, int, int, bool], ...]:
        found = []
        for msg in ipr.get_rules(family=socket.AF_INET):
            if msg.get_attr("FRA_PROTOCOL") == VISPD_RTPROTO:
                blackhole = msg["action"] == FR_ACT_BLACKHOLE
                found.append((msg.get_attr("FRA_IIFNAME") or "",
                              0 if blackhole else msg.get_attr("FRA_TABLE") or msg["table"],
                              msg.get_attr("FRA_PRIORITY") or 0, blackhole))
        return tuple(found)
