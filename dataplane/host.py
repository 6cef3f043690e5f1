"""The kernel Host: the verbs resource recipes call (compiler.resources.host.Host),
carried out with netlink (pyroute2 and raw messages), `tc`/`nft` batches and processes.

It writes the ownership markers that `dataplane.observe` reads back:

* namespaces: `lo`'s ifalias `vispd:TOPO d=DIGEST [nft=DIGEST]`, and the state journal
  lists every namespace vispd starts to create, before creating it;
* devices: ifalias `vispd:TOPO d=DIGEST [tc=DIGEST] [peer=NS/IF]`;
* routes: route protocol 77, per namespace one raw netlink batch (dataplane.fib);
* processes: PID files under the topology's run directory (dataplane.daemons);
* what the machine lends (its interfaces, sysctls of its own namespace): records under the
  topology's state directory, written before anything is changed (dataplane.lending).

`KernelHost` keeps per-namespace sockets and caches (ifindexes, markers) for one command;
`MininetHost` (dataplane.mininet_backend) overrides only how a namespace and a veth pair
come to exist.

I/O: the kernel and processes, for one topology.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Callable, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from compiler.resources import VISPD_RTPROTO, owner_marker
from compiler.resources.host import RunningDaemon
from model.errors import VispdError
from model.naming import HOME_NS

from . import netns, rtdump, sockets
from .borrow import Ledger
from .bpf import hooks as bpf_hooks, node as bpf_node, spec as bpf_spec
from .daemons import DaemonDirectory
from .fib import Fib
from .ownverbs import OwnSliverVerbs
from .lending import LendingVerbs
from .rtnl import RawLinks
from .shells import kill_recorded_shells

MAIN_TABLE = 254
LOOPBACK_INDEX = 1  # the kernel's LOOPBACK_IFINDEX: lo is device 1 in every namespace
NUD_PERMANENT = 0x80


def alias_text(marker: str, tokens: dict[str, str]) -> str:
    return " ".join([marker] + [f"{k}={v}" for k, v in sorted(tokens.items())])


class KernelHost(LendingVerbs, OwnSliverVerbs):
    """The Host port on this machine's kernel, for one topology."""

    def __init__(self, topology: str, journal: Callable[[list[str]], None] | None = None,
                 run_dir: str | None = None, shells_file: str | None = None, borrow_dir: str | None = None):
        self.topology = topology
        self.marker = owner_marker(topology)
        self.shells_file = shells_file  # lab host shells recorded by PID (see dataplane.shells)
        self._journal = journal or (lambda names: None)
        self._sockets = netns.SocketsByNamespace(IPRoute)
        self._raw = netns.SocketsByNamespace(RawLinks)
        self.aliases: dict[tuple[str, str], dict[str, str]] = {}  # what each owned device's marker says
        self._indexes: dict[tuple[str, str], int] = {}
        self._fresh: set[str] = set()  # namespaces created by this run: nothing stale inside
        self.daemons = DaemonDirectory(run_dir or f"/run/vispd/{topology}")
        # beside the run directory (STATE/TOPO/run): STATE/TOPO/borrowed
        self.ledger = Ledger(borrow_dir or os.path.join(os.path.dirname(self.daemons.run_dir), "borrowed"))

    # -- sockets and caches -----------------------------------------------------------------
    def ipr(self, ns: str) -> IPRoute:
        return self._sockets.get(ns)

    def raw(self, ns: str) -> RawLinks:
        """A raw rtnetlink socket in `ns` for the frequent link lookups and settings."""
        return self._raw.get(ns)

    def close(self) -> None:
        self._sockets.close()
        self._raw.close()

    def drop_sockets(self, ns: str) -> None:
        self._sockets.drop(ns)
        self._raw.drop(ns)

    def index(self, ns: str, ifname: str) -> int:
        """ifindex of a device, cached (one netlink GET per device per run; `lo` is 1 in
        every namespace)."""
        if ifname == "lo":
            return LOOPBACK_INDEX
        index = self._indexes.get((ns, ifname))
        if index is None:
            index = self.raw(ns).index(ifname)
            if index is None:
                raise VispdError(f"no device {ifname} in {ns}")
            self._indexes[(ns, ifname)] = index
        return index

    def lookup(self, ns: str, ifname: str) -> int | None:
        try:
            return self.index(ns, ifname)
        except VispdError:
            return None

    def forget_index(self, ns: str, ifname: str | None = None) -> None:
        if ifname is not None:
            self._indexes.pop((ns, ifname), None)
        else:
            for key in [k for k in self._indexes if k[0] == ns]:
                del self._indexes[key]

    # -- namespaces ---------------------------------------------------------------------------
    def netns_exists(self, ns: str) -> bool:
        return netns.exists(ns)

    def netns_create(self, ns: str) -> None:
        netns.create(ns)
        self._fresh.add(ns)

    def netns_delete(self, ns: str) -> None:
        self.give_back_inside(ns)  # a borrowed interface is given back, never destroyed with it
        if self.shells_file:
            kill_recorded_shells(self.shells_file, ns)
        netns.kill_inside(ns)
        self.drop_sockets(ns)
        self.forget_index(ns)
        for key in [k for k in self.aliases if k[0] == ns]:
            del self.aliases[key]
        netns.remove(ns)

    def journal(self, names: list[str]) -> None:
        self._journal(names)

    def set_sysctls(self, ns: str, sysctls: Iterable[tuple[str, str]]) -> None:
        with netns.entered(ns):
            for key, value in sysctls:
                netns.write_sysctl(key, value)

    # -- devices --------------------------------------------------------------------------------
    def clear_name(self, ns: str, ifname: str) -> None:
        """Remove a device left unmarked by a run that died between creating and marking it.
        Only called inside namespaces vispd owns, where slice programs cannot create devices."""
        if ns in self._fresh:
            return
        stale = self.lookup(ns, ifname)
        if stale is not None and ns == HOME_NS:  # the machine's: only what carries our marker
            alias = self.ipr(ns).get_links(stale)[0].get_attr("IFLA_IFALIAS") or ""
            if alias.split(" ", 1)[0] != self.marker:
                raise VispdError(f"the machine already has a device named {ifname}, which vispd did not make")
        if stale is not None:
            self.ipr(ns).link("del", index=stale)
            self._indexes.clear()

    def veth_create(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, mtu: int,
                    mac: str = "", peer_mac: str = "") -> None:
        peer_fd = os.open(netns.path(peer_ns), os.O_RDONLY)
        try:
            self.raw(ns).add_veth(ifname, mtu, peer_ifname, peer_fd, mac, peer_mac)
        finally:
            os.close(peer_fd)

    def macvlan_create(self, ns: str, ifname: str, lower_ns: str, lower_ifname: str, mac: str, mtu: int) -> None:
        target = os.open(netns.path(ns), os.O_RDONLY)
        try:
            self.raw(lower_ns).add_macvlan(ifname, self.index(lower_ns, lower_ifname), mac, mtu, target)
        finally:
            os.close(target)

    def tuntap_create(self, ns: str, ifname: str, mode: str, uid: int, gid: int) -> None:
        with netns.entered(ns):
            self.ipr(ns).link("add", ifname=ifname, kind="tuntap", mode=mode, uid=uid, gid=gid)

    def device_exists(self, ns: str, ifname: str) -> bool:
        return self.lookup(ns, ifname) is not None

    def device_delete(self, ns: str, ifname: str) -> None:
        found = self.lookup(ns, ifname)
        if found is not None:
            self.ipr(ns).link("del", index=found)
        self.aliases.pop((ns, ifname), None)
        self._indexes.clear()  # devices stacked on it (macvlans, the veth peer) went too

    def mark(self, ns: str, ifname: str, tokens: dict | None, replace: bool = False, *, up: bool | None = None,
             arp: bool | None = None, mtu: int | None = None) -> None:
        """Set the device's ownership marker (`tokens` merged into what it says, a None value
        removing a token; `replace` starts from nothing; None leaves the marker alone) and,
        in the same request, its state, ARP and MTU."""
        alias = None
        if tokens is not None:
            current = {} if replace else dict(self.aliases.get((ns, ifname), {}))
            for key, value in tokens.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            self.aliases[(ns, ifname)] = current
            alias = alias_text(self.marker, current)
        self.raw(ns).set(self.index(ns, ifname), alias=alias, up=up, arp=arp, mtu=mtu)

    # -- addresses, neighbours, routes -------------------------------------------------------------
    def address_replace(self, ns: str, ifname: str, cidr: str) -> None:
        address, prefixlen = cidr.split("/")
        self.raw(ns).replace_address(self.index(ns, ifname), address, int(prefixlen))

    def address_delete(self, ns: str, ifname: str, cidr: str) -> None:
        address, prefixlen = cidr.split("/")
        with contextlib.suppress(NetlinkError):
            self.ipr(ns).addr("del", index=self.index(ns, ifname), address=address, prefixlen=int(prefixlen))

    def neighbour_replace(self, ns: str, ifname: str, ip: str, mac: str) -> None:
        self.raw(ns).replace_neighbour(self.index(ns, ifname), ip, mac)

    def neighbour_delete(self, ns: str, ifname: str, ip: str) -> None:
        with contextlib.suppress(NetlinkError):
            self.ipr(ns).neigh("del", dst=ip, ifindex=self.index(ns, ifname))

    def routes_apply(self, ns: str, prefsrc: str, changes: list[tuple[str, str | None]], table: int = MAIN_TABLE) -> list:
        with netns.entered(ns):
            fib = Fib(VISPD_RTPROTO, table, 0, prefsrc=prefsrc or None)
        try:
            return fib.apply(changes)
        finally:
            fib.close()

    def rule_add(self, ns: str, iif: str, table: int, priority: int, blackhole: bool = False) -> None:
        with contextlib.suppress(NetlinkError):  # already there: the same rule
            self.ipr(ns).rule("add", **_rule_fields(iif, table, priority, blackhole))

    def rule_delete(self, ns: str, iif: str, table: int, priority: int, blackhole: bool = False) -> None:
        with contextlib.suppress(NetlinkError):
            self.ipr(ns).rule("del", **_rule_fields(iif, table, priority, blackhole))

    # -- batch tools ---------------------------------------------------------------------------------
    def run_batch(self, ns: str, argv: list[str], script: str, check: bool = True) -> None:
        with netns.entered(ns):
            result = subprocess.run(argv, input=script, text=True, capture_output=True)
        if check and result.returncode != 0:
            raise VispdError(f"{' '.join(argv)} in {ns} failed: {result.stderr.strip()}")

    def qdisc_root_kind(self, ns: str, ifname: str) -> str | None:
        index = self.lookup(ns, ifname)
        if index is None:
            return None
        return self.raw(ns).read(rtdump.root_qdiscs).get(index)

    def nft_table_comment(self, ns: str, family: str, table: str) -> str | None:
        with netns.entered(ns):
            listed = subprocess.run(["nft", "list", "table", family, table], capture_output=True, text=True)
        return listed.stdout if listed.returncode == 0 else None

    # -- the node's BPF guard (dataplane.bpf) ----------------------------------------------------------
    def bpf_guard_apply(self, ns: str, hook: str, devices: tuple) -> list[str]:
        return bpf_node.apply(bpf_spec.node_guard(ns, devices), hook)

    def bpf_guard_pending(self, ns: str, hook: str, devices: tuple) -> list[str]:
        try:
            return bpf_node.pending(bpf_spec.node_guard(ns, devices), hook)
        except LookupError as missing:  # a device of the guard is not there (yet)
            return [str(missing)]

    def bpf_guard_delete(self, ns: str) -> list[str]:
        return [removed for hook in bpf_hooks.MODES for removed in bpf_node.delete(ns, hook)]

    # -- daemons ---------------------------------------------------------------------------------------
    def daemon_start(self, name: str, ns: str, argv: list[str], files: dict, env: dict, digest: str,
                     launch: str) -> None:
        self.daemons.start(name, ns, argv, files, env, digest, launch)

    def daemon_reload(self, name: str, files: dict, signal: int, digest: str, launch: str) -> bool:
        return self.daemons.reload(name, files, signal, digest, launch)

    def daemon_stop(self, name: str) -> None:
        self.daemons.stop(name)

    def daemon_missing(self, name: str, ns: str, listens) -> list:
        if not listens:
            return []
        running = self.daemons.running(name)
        if running is None:
            return list(listens)
        return sockets.missing(ns, running.pid, listens)

    def daemon_log(self, name: str) -> str:
        return self.daemons.path(f"{name}.log")

    def port_holders(self, ns: str, listen) -> list[tuple[int, str]]:
        return sockets.holders(ns, listen)

    def daemons_running(self) -> list[RunningDaemon]:
        found = []
        for name in self.daemons.recorded():
            running = self.daemons.running(name)
            if running is not None:  # dead: the diff starts it again if it is still wanted
                found.append(RunningDaemon(name, running.ns, running.digest, running.launch))
        return found


FR_ACT_TO_TBL, FR_ACT_BLACKHOLE = 1, 6


def _rule_fields(iif: str, table: int, priority: int, blackhole: bool) -> dict:
    fields = {"iifname": iif, "priority": priority, "protocol": VISPD_RTPROTO}
    if blackhole:
        fields["action"] = FR_ACT_BLACKHOLE
    else:
        fields.update(table=table, action=FR_ACT_TO_TBL)
    return fields
