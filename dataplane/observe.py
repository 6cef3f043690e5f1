"""Reading what vispd owns in the kernel for a topology, as neutral views (no decisions).

Ownership is recognised by the markers `dataplane.host.KernelHost` writes: `lo`'s ifalias
(or the state journal) for namespaces, each device's ifalias, route protocol 77 for
routes; addresses and neighbours count only on owned devices. Which of it matches the plan
is each resource kind's call (`observe` in compiler.resources); this module only reads.

I/O: reads the kernel through the host's sockets (changes nothing).
"""
from __future__ import annotations

from pyroute2.netlink.exceptions import NetlinkError

from compiler.resources import VISPD_RTPROTO
from compiler.resources.host import DeviceView, NamespaceView
from model.naming import NS_PREFIX, parse_ns

from . import netns, rtdump
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
        raw = self.host.raw(ns)
        devices, owned = self._devices(ns, raw.read(rtdump.links))
        addresses = [(owned[index], cidr) for index, cidr in raw.read(rtdump.addresses) if index in owned]
        neighbours = [(owned[index], ip, mac) for index, ip, mac, state in raw.read(rtdump.neighbours)
                      if index in owned and state & NUD_PERMANENT]
        routes = self._routes(ns)
        rules: tuple = ()
        if slice_name is None:  # node namespaces: the border's policy tables and rules too
            routes += self._policy_routes(raw.read(rtdump.routes))
            rules = self._rules(raw.read(rtdump.rules))
        return NamespaceView(ns, node, slice_name, self.host.aliases.get((ns, "lo"), {}), devices=tuple(devices),
                             addresses=tuple(addresses), neighbours=tuple(neighbours), routes=routes, rules=rules)

    def _devices(self, ns: str, links: list[rtdump.Link]) -> tuple[list[DeviceView], dict[int, str]]:
        devices, owned = [], {}
        for link in links:
            if link.ifname == "lo":
                owned[link.index] = "lo"
                continue
            tokens = tokens_of(link.alias, self.host.marker)
            if tokens is None:
                continue
            owned[link.index] = link.ifname
            self.host.aliases[(ns, link.ifname)] = tokens
            devices.append(DeviceView(ifname=link.ifname, kind=link.kind, tokens=tokens, mtu=link.mtu,
                                      up=bool(link.flags & IFF_UP), mac=link.mac, noarp=bool(link.flags & IFF_NOARP)))
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
    def _policy_routes(routes) -> tuple[tuple[int, str, str], ...]:
        """vispd's routes in other tables than the main one (the border's per-provider tables)."""
        return tuple((table, dst, gateway) for table, proto, dst, gateway in routes
                     if proto == VISPD_RTPROTO and table not in (MAIN_TABLE, 255))

    @staticmethod
    def _rules(rules) -> tuple[tuple[str, int, int, bool], ...]:
        found = []
        for iif, table, priority, action, protocol in rules:
            if protocol == VISPD_RTPROTO:
                blackhole = action == FR_ACT_BLACKHOLE
                found.append((iif, 0 if blackhole else table, priority, blackhole))
        return tuple(found)
