"""Observation: what vispd owns in the kernel for a topology, as plan resources.

`Observer` is the reading half of the kernel backend (`dataplane.kernel.KernelBackend`
inherits it and provides the sockets and state it uses: `ipr()`, `marker`, `topology`,
`daemons`, `_aliases`, `_known`, `unowned`, `_broken`). Ownership is recognised by the
markers the backend writes:

* namespaces: `lo`'s ifalias `vispd:TOPO d=DIGEST [nft=DIGEST]`, or the journal;
* devices: ifalias `vispd:TOPO d=DIGEST [tc=DIGEST] [peer=NS/IF]`;
* routes: protocol 77; addresses and neighbours: only on owned devices;
* the nft guard: its digest on `lo` *and* the table present with our comment;
* daemons: PID files under the run directory, alive in the namespace recorded there.

Where a kernel object's marker digest equals the desired resource's digest and its
checkable attributes agree, the desired resource itself is reported (the diff then sees
no change); otherwise a resource that differs from the desired one is.
"""
from __future__ import annotations

import socket
import subprocess
from dataclasses import replace

from pyroute2.netlink.exceptions import NetlinkError

from .fib import Fib
from model.naming import NS_PREFIX, parse_ns
from compiler.plan import (
    Address,
    Daemon,
    IsolationFilter,
    LinkDown,
    Macvlan,
    Neighbour,
    Netns,
    Resource,
    Route,
    Shaping,
    TunTap,
    Veth,
)

from . import netns, nft

VISPD_RTPROTO = 77  # route protocol number that marks vispd's routes
MAIN_TABLE = 254
NUD_PERMANENT = 0x80
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


class Observer:
    def namespaces(self) -> list[str]:
        """Owned namespaces of this topology (marker on lo, or in the journal)."""
        owned = []
        self.unowned = []
        for name in netns.list_names(f"{NS_PREFIX}{self.topology}."):
            parsed = parse_ns(name)
            if not parsed or parsed[0] != self.topology:
                continue
            try:
                lo = self.ipr(name).get_links(ifname="lo")[0]
                tokens = tokens_of(lo.get_attr("IFLA_IFALIAS"), self.marker)
            except (OSError, NetlinkError, IndexError):
                # A name whose bind mount never happened (a run killed in between).
                if name in self._known:
                    self._broken.add(name)
                    owned.append(name)
                else:
                    self.unowned.append(name)
                continue
            if tokens is None and name not in self._known:
                self.unowned.append(name)
                self._drop_socket(name)
                continue
            self._aliases[(name, "lo")] = tokens or {}
            owned.append(name)
        return owned

    def observe(self, desired: dict[tuple, Resource]) -> list[Resource]:
        """Every resource vispd owns for this topology, as planned resources.

        Where the kernel object's marker digest equals the desired resource's digest and its
        checkable attributes agree, the desired resource itself is reported (so the diff
        sees no change); otherwise a resource that differs from the desired one is.
        """
        found: list[Resource] = []
        for name in self.namespaces():
            _, node, slice_name = parse_ns(name)
            found.extend(self._observe_ns(name, node, slice_name, desired))
        found.extend(self._observe_daemons(desired))
        return found

    def _observe_daemons(self, desired: dict[tuple, Resource]) -> list[Resource]:
        found: list[Resource] = []
        for name in self.daemons.recorded():
            running = self.daemons.running(name)
            if running is None:
                continue  # dead: the diff starts it again if it is still wanted
            want = desired.get(("daemon", name))
            if want is not None and running.digest == want.digest() and want.ns == running.ns:
                found.append(want)
            elif want is not None and running.launch == want.launch_digest() and want.ns == running.ns:
                found.append(replace(want, files=(("?", running.digest),)))  # same process, other files
            else:
                found.append(Daemon(node=want.node if want else "", ns=running.ns, name=name, argv=("?",)))
        return found

    def _observe_ns(self, ns: str, node: str, slice_name: str | None,
                    desired: dict[tuple, Resource]) -> list[Resource]:
        if ns in self._broken:
            return [Netns(node=node, ns=ns, role="broken", slice=slice_name)]
        ipr = self.ipr(ns)
        found: list[Resource] = []
        lo_tokens = self._aliases.get((ns, "lo"), {})
        want = desired.get(("netns", ns))
        if want is not None and lo_tokens.get("d") == want.digest():
            found.append(want)
        else:
            role = "sliver" if slice_name else ("lab" if node.startswith("+") else "node")
            found.append(Netns(node=node, ns=ns, role=role,
                               slice=slice_name, sysctls=(("unknown", lo_tokens.get("d", "")),)))
        if "nft" in lo_tokens:
            want = desired.get(("filter", ns))
            if want is not None and lo_tokens["nft"] == want.digest() and self._guard_present(ns):
                found.append(want)
            else:
                found.append(IsolationFilter(node=node, ns=ns))

        owned: dict[int, str] = {}
        for link in ipr.get_links():
            ifname = link.get_attr("IFLA_IFNAME")
            tokens = tokens_of(link.get_attr("IFLA_IFALIAS"), self.marker)
            if ifname == "lo":
                owned[link["index"]] = "lo"
                continue
            if tokens is None:
                continue
            owned[link["index"]] = ifname
            self._aliases[(ns, ifname)] = tokens
            found.extend(self._observe_device(ns, node, link, ifname, tokens, desired))

        for msg in ipr.get_addr(family=socket.AF_INET):
            ifname = owned.get(msg["index"])
            if ifname is None:
                continue
            cidr = f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"
            if ifname == "lo" and cidr.startswith("127."):
                continue
            found.append(Address(node=node, ns=ns, ifname=ifname, cidr=cidr))
        for msg in ipr.get_neighbours(family=socket.AF_INET):
            ifname = owned.get(msg["ifindex"])
            if ifname is None or not msg["state"] & NUD_PERMANENT:
                continue
            found.append(Neighbour(node=node, ns=ns, ifname=ifname, ip=msg.get_attr("NDA_DST"),
                                   mac=msg.get_attr("NDA_LLADDR") or ""))
        found.extend(self._observe_routes(ns, node, desired))
        return found

    def _observe_routes(self, ns: str, node: str, desired: dict[tuple, Resource]) -> list[Resource]:
        """Our static routes (protocol 77, metric 0), read with one filtered raw dump; a route
        whose destination and gateway match the plan is reported as planned."""
        with netns.entered(ns):
            fib = Fib(VISPD_RTPROTO, MAIN_TABLE, 0)
        try:
            present = fib.routes()
        finally:
            fib.close()
        found: list[Resource] = []
        for dst, gateway in present.items():
            want = desired.get(("route", ns, dst))
            if want is not None and want.gateway == (gateway or ""):
                found.append(want)
            else:
                found.append(Route(node=node, ns=ns, dst=dst, gateway=gateway or "", ifname="?"))
        return found

    def _guard_present(self, ns: str) -> bool:
        """The marker says the guard was applied; check its table is still there."""
        with netns.entered(ns):
            listed = subprocess.run(["nft", "list", "table", "netdev", nft.TABLE],
                                    capture_output=True, text=True)
        return listed.returncode == 0 and self.marker in listed.stdout

    def _observe_device(self, ns, node, link, ifname, tokens, desired) -> list[Resource]:
        found: list[Resource] = []
        kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        mtu = link.get_attr("IFLA_MTU")
        want = desired.get(("device", ns, ifname))
        is_up = bool(link["flags"] & IFF_UP)
        if kind == "veth" and not is_up:
            found.append(LinkDown(node=node, ns=ns, ifname=ifname))  # a substrate link taken down
        if tokens.get("role") != "peer":
            healthy = (
                want is not None
                and tokens.get("d") == want.digest()
                and mtu == want.mtu
                and (is_up or isinstance(want, Veth))  # a veth's admin state is LinkDown's business
                and (not isinstance(want, Macvlan)
                     or (link.get_attr("IFLA_ADDRESS") == want.mac and link["flags"] & IFF_NOARP))
            )
            if healthy:
                found.append(want)
            else:
                peer_ns, _, peer_if = tokens.get("peer", "/").partition("/")
                cls = {"veth": Veth, "macvlan": Macvlan, "tun": TunTap}.get(kind, Veth)
                extra = {"peer_ns": peer_ns, "peer_ifname": peer_if} if cls is Veth else {}
                found.append(cls(node=node, ns=ns, ifname=ifname, mtu=-1, **extra))
        if "tc" in tokens:
            want = desired.get(("shaping", ns, ifname))
            qdiscs = self.ipr(ns).get_qdiscs(index=link["index"])
            has_htb = any(q.get_attr("TCA_KIND") == "htb" and q["parent"] == 0xFFFFFFFF for q in qdiscs)
            if want is not None and has_htb and tokens["tc"] == want.digest():
                found.append(want)
            else:
                found.append(Shaping(node=node, ns=ns, ifname=ifname))
        return found
