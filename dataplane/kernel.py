"""The kernel backend: apply diff steps for a topology (observation is in `observe`).

The only module (with `netns`, `tc`, `nft`, `rtnl`, `daemons`) that changes the kernel.
It writes the ownership markers `observe` reads back:

* namespaces: `lo`'s ifalias is `vispd:TOPO d=DIGEST [nft=DIGEST]`, and the state journal
  lists every namespace vispd starts to create, before creating it (so a crash between
  creating and marking one still leaves it ours);
* devices: ifalias `vispd:TOPO d=DIGEST [tc=DIGEST] [peer=NS/IF]`, DIGEST being the hash of
  the planned resource, so a changed plan is seen without re-reading every attribute;
* routes: protocol number 77, sent per namespace as one raw netlink batch;
* nftables: table `netdev vispd` in owned node namespaces only.

Nothing without a marker is ever reported, changed or deleted.
"""
from __future__ import annotations

import contextlib
import subprocess
import time
from typing import Callable, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .fib import Fib
from compiler.diff import Step
from model.errors import VispdError
from compiler.plan import (
    Address,
    Daemon,
    Device,
    IsolationFilter,
    LinkDown,
    Macvlan,
    Neighbour,
    Netns,
    Route,
    Shaping,
    TunTap,
    Veth,
    owner_marker,
)

from . import netns, nft, tc
from .daemons import DaemonDirectory
from .shells import kill_recorded_shells
from .observe import MAIN_TABLE, NUD_PERMANENT, VISPD_RTPROTO, Observer
from .rtnl import RawLinks

IFF_LOWER_UP = 0x10000


class ApplyError(VispdError):
    def __init__(self, step: Step, cause: BaseException):
        super().__init__(f"{step.describe()}: {cause}")
        self.step = step


def _alias(marker: str, tokens: dict[str, str]) -> str:
    return " ".join([marker] + [f"{k}={v}" for k, v in sorted(tokens.items())])


class KernelBackend(Observer):
    """Observes and changes the kernel for one topology, on this machine."""

    def __init__(self, topology: str, journal: Callable[[list[str]], None] | None = None,
                 known_namespaces: Iterable[str] = (), run_dir: str | None = None,
                 shells_file: str | None = None):
        self.topology = topology
        self.shells_file = shells_file  # lab host shells recorded by PID (see dataplane.shells)
        self.marker = owner_marker(topology)
        self._journal = journal or (lambda names: None)
        self._known = set(known_namespaces)
        self._sockets = netns.SocketsByNamespace(IPRoute)
        self._raw = netns.SocketsByNamespace(RawLinks)
        self._aliases: dict[tuple[str, str], dict[str, str]] = {}
        self.unowned: list[str] = []
        self._broken: set[str] = set()
        self._indexes: dict[tuple[str, str], int] = {}
        self._fresh: set[str] = set()  # namespaces created by this run: nothing stale inside
        self.daemons = DaemonDirectory(run_dir or f"/run/vispd/{topology}")

    # -- sockets -----------------------------------------------------------------------
    def ipr(self, ns: str) -> IPRoute:
        return self._sockets.get(ns)

    def raw(self, ns: str) -> RawLinks:
        """A raw rtnetlink socket in `ns` for the frequent link lookups and settings."""
        return self._raw.get(ns)

    def close(self) -> None:
        self._sockets.close()
        self._raw.close()

    def _drop_socket(self, ns: str) -> None:
        self._sockets.drop(ns)
        self._raw.drop(ns)

    def _index(self, ns: str, ifname: str) -> int:
        """ifindex of a device, cached (one netlink GET per device per run)."""
        index = self._indexes.get((ns, ifname))
        if index is None:
            index = self.raw(ns).index(ifname)
            if index is None:
                raise VispdError(f"no device {ifname} in {ns}")
            self._indexes[(ns, ifname)] = index
        return index

    def _lookup(self, ns: str, ifname: str) -> int | None:
        try:
            return self._index(ns, ifname)
        except VispdError:
            return None

    def _forget_index(self, ns: str, ifname: str | None = None) -> None:
        if ifname is not None:
            self._indexes.pop((ns, ifname), None)
        else:
            for key in [k for k in self._indexes if k[0] == ns]:
                del self._indexes[key]

    # -- apply -------------------------------------------------------------------------
    def apply(self, steps: list[Step], progress: Callable[[Step], None] | None = None) -> None:
        """Carry out steps in order; shaping is batched per namespace (one `tc -batch`), and
        routes per namespace (raw netlink messages sent together, see bgp/fib.py)."""
        pending_tc: dict[str, list[Step]] = {}
        pending_routes: dict[tuple[str, str], list[Step]] = {}
        creating = [s.resource.ns for s in steps if isinstance(s.resource, Netns) and s.action == "create"]
        if creating:
            self._journal(creating)  # before any is made: one write, one fsync
        for step in steps:
            resource = step.resource
            if isinstance(resource, Shaping) and step.action != "delete":
                pending_tc.setdefault(resource.ns, []).append(step)
                continue
            if pending_tc and resource.PHASE > Shaping.PHASE:
                self._flush_tc(pending_tc, progress)
            if isinstance(resource, Route):
                pending_routes.setdefault((resource.ns, resource.prefsrc), []).append(step)
                continue
            if pending_routes and resource.PHASE > Route.PHASE:
                self._flush_routes(pending_routes, progress)
            try:
                getattr(self, f"_{step.action}_{resource.KIND}")(step)
            except (OSError, NetlinkError, subprocess.CalledProcessError, VispdError) as exc:
                raise ApplyError(step, exc) from exc
            if progress:
                progress(step)
        self._flush_tc(pending_tc, progress)
        self._flush_routes(pending_routes, progress)

    def _flush_routes(self, pending: dict[tuple[str, str], list[Step]], progress) -> None:
        for (ns, prefsrc), steps in sorted(pending.items()):
            with netns.entered(ns):
                fib = Fib(VISPD_RTPROTO, MAIN_TABLE, 0, prefsrc=prefsrc or None)
            try:
                errors = fib.apply((s.resource.dst, None if s.action == "delete" else s.resource.gateway)
                                   for s in steps)
            finally:
                fib.close()
            if errors:
                failed = next(s for s in steps if s.resource.dst == errors[0].prefix)
                raise ApplyError(failed, OSError(errors[0].errno, str(errors[0])))
            if progress:
                for s in steps:
                    progress(s)
        pending.clear()

    def _flush_tc(self, pending: dict[str, list[Step]], progress) -> None:
        for ns, steps in sorted(pending.items()):
            lines = [line for s in steps for line in tc.render(s.resource)]
            # u32 filters are appended: clear old ones by replacing the root qdisc first.
            prelude = [f"qdisc del dev {s.resource.ifname} root" for s in steps if s.action == "update"]
            try:
                if prelude:
                    self._run_in(ns, ["tc", "-force", "-batch", "-"], "\n".join(prelude) + "\n", check=False)
                self._run_in(ns, ["tc", "-batch", "-"], "\n".join(lines) + "\n")
                for s in steps:
                    self._set_token(ns, s.resource.ifname, "tc", s.resource.digest())
            except (OSError, NetlinkError, subprocess.CalledProcessError, VispdError) as exc:
                raise ApplyError(steps[0], exc) from exc
            if progress:
                for s in steps:
                    progress(s)
        pending.clear()

    def _run_in(self, ns: str, argv: list[str], stdin: str, check: bool = True) -> None:
        with netns.entered(ns):
            result = subprocess.run(argv, input=stdin, text=True, capture_output=True)
        if check and result.returncode != 0:
            raise VispdError(f"{' '.join(argv)} in {ns} failed: {result.stderr.strip()}")

    def _set_token(self, ns: str, ifname: str, key: str, value: str | None, **link_attrs) -> None:
        """Update one token of a device's ownership alias (plus other attributes, same call)."""
        tokens = dict(self._aliases.get((ns, ifname), {}))
        if value is None:
            tokens.pop(key, None)
        else:
            tokens[key] = value
        self._aliases[(ns, ifname)] = tokens
        state = link_attrs.pop("state", None)
        self.raw(ns).set(self._index(ns, ifname), alias=_alias(self.marker, tokens),
                         up=None if state is None else state == "up", **link_attrs)

    # netns
    def _create_netns(self, step: Step) -> None:
        res: Netns = step.resource
        if netns.exists(res.ns):
            # Ours (journal says so) but unmarked or half-made: start it afresh.
            self._delete_netns(Step("delete", res))
        self._make_netns(res)
        self._fresh.add(res.ns)
        self._aliases[(res.ns, "lo")] = {}
        self._update_netns(step)

    def _make_netns(self, res: Netns) -> None:
        """Create the named namespace (a subclass may have another tool create it)."""
        netns.create(res.ns)

    def _update_netns(self, step: Step) -> None:
        res: Netns = step.resource
        if res.ns in self._broken:
            self._broken.discard(res.ns)
            self._create_netns(step)
            return
        with netns.entered(res.ns):
            for key, value in res.sysctls:
                netns.write_sysctl(key, value)
        self._set_token(res.ns, "lo", "d", res.digest(), state="up")

    def _delete_netns(self, step: Step) -> None:
        ns = step.resource.ns
        if self.shells_file:
            kill_recorded_shells(self.shells_file, ns)
        netns.kill_inside(ns)
        self._drop_socket(ns)
        self._forget_index(ns)
        netns.remove(ns)

    # devices
    def _create_veth(self, step: Step) -> None:
        res: Veth = step.resource
        self._clear_name(res.ns, res.ifname)
        self._clear_name(res.peer_ns, res.peer_ifname)
        self._make_veth(res)
        self._mark_veth(res)

    def _make_veth(self, res: Veth) -> None:
        """Create the pair (a subclass may have another tool create it, e.g. Mininet)."""
        ipr = self.ipr(res.ns)
        peer_fd = open(netns.path(res.peer_ns))
        try:
            peer = {"ifname": res.peer_ifname, "net_ns_fd": peer_fd.fileno(), "mtu": res.mtu}
            if res.peer_mac:
                peer["address"] = res.peer_mac
            extra = {"address": res.mac} if res.mac else {}
            ipr.link("add", ifname=res.ifname, kind="veth", mtu=res.mtu, peer=peer, **extra)
        finally:
            peer_fd.close()

    def _mark_veth(self, res: Veth) -> None:
        """Mark both ends as ours (and set MTU, ARP and bring them up)."""
        self._aliases[(res.ns, res.ifname)] = {"peer": f"{res.peer_ns}/{res.peer_ifname}"}
        self._aliases[(res.peer_ns, res.peer_ifname)] = {}
        self._set_token(res.ns, res.ifname, "d", res.digest(), state="up", arp=res.arp, mtu=res.mtu)
        self._set_token(res.peer_ns, res.peer_ifname, "role", "peer", state="up", arp=res.arp, mtu=res.mtu)

    def _create_macvlan(self, step: Step) -> None:
        res: Macvlan = step.resource
        self._clear_name(res.ns, res.ifname)
        lower = self.ipr(res.lower_ns)
        target = open(netns.path(res.ns))
        try:
            lower.link("add", ifname=res.ifname, kind="macvlan", link=self._index(res.lower_ns, res.lower_ifname),
                       macvlan_mode="private", address=res.mac, mtu=res.mtu, net_ns_fd=target.fileno())
        finally:
            target.close()
        self._finish_device(res, arp=False)

    def _create_tuntap(self, step: Step) -> None:
        res: TunTap = step.resource
        self._clear_name(res.ns, res.ifname)
        with netns.entered(res.ns):
            self.ipr(res.ns).link("add", ifname=res.ifname, kind="tuntap", mode=res.mode,
                                  uid=res.uid, gid=res.gid)
        self._finish_device(res, arp=True)

    def _clear_name(self, ns: str, ifname: str) -> None:
        """Remove a device left unmarked by a run that died between creating and marking it.
        Only called inside namespaces vispd owns, where slice programs cannot create devices."""
        if ns in self._fresh:
            return
        stale = self._lookup(ns, ifname)
        if stale is not None:
            self.ipr(ns).link("del", index=stale)
            self._indexes.clear()

    def _finish_device(self, res: Device, arp: bool) -> None:
        self._aliases[(res.ns, res.ifname)] = {}
        self._set_token(res.ns, res.ifname, "d", res.digest(), mtu=res.mtu, arp=arp, state="up")

    def _delete_device(self, step: Step) -> None:
        res = step.resource
        found = self._lookup(res.ns, res.ifname)
        if found is not None:
            self.ipr(res.ns).link("del", index=found)
        self._aliases.pop((res.ns, res.ifname), None)
        self._indexes.clear()  # devices stacked on it (macvlans, the veth peer) went too

    _delete_veth = _delete_macvlan = _delete_tuntap = _delete_device

    def wait_carrier(self, devices: list[tuple[str, str]], timeout: float) -> bool:
        """Wait until every (namespace, device) has carrier (IFF_LOWER_UP); False on timeout."""
        deadline = time.monotonic() + timeout
        pending = list(devices)
        while pending:
            pending = [(ns, ifname) for ns, ifname in pending if not self._has_carrier(ns, ifname)]
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _has_carrier(self, ns: str, ifname: str) -> bool:
        index = self._lookup(ns, ifname)
        if index is None:
            return True  # nothing to wait for
        return bool(self.ipr(ns).get_links(index)[0]["flags"] & IFF_LOWER_UP)

    # administrative state of substrate links
    def _create_linkdown(self, step: Step) -> None:
        res: LinkDown = step.resource
        self.raw(res.ns).set(self._index(res.ns, res.ifname), up=False)

    def _delete_linkdown(self, step: Step) -> None:
        res: LinkDown = step.resource
        index = self._lookup(res.ns, res.ifname)
        if index is not None:
            self.raw(res.ns).set(index, up=True)

    # addresses, neighbours, routes
    def _create_address(self, step: Step) -> None:
        res: Address = step.resource
        address, prefixlen = res.cidr.split("/")
        self.ipr(res.ns).addr("replace", index=self._index(res.ns, res.ifname), address=address,
                              prefixlen=int(prefixlen))

    def _delete_address(self, step: Step) -> None:
        res: Address = step.resource
        address, prefixlen = res.cidr.split("/")
        with contextlib.suppress(NetlinkError):
            self.ipr(res.ns).addr("del", index=self._index(res.ns, res.ifname), address=address,
                                  prefixlen=int(prefixlen))

    def _create_neighbour(self, step: Step) -> None:
        res: Neighbour = step.resource
        self.ipr(res.ns).neigh("replace", dst=res.ip, lladdr=res.mac,
                               ifindex=self._index(res.ns, res.ifname), state=NUD_PERMANENT)

    _update_neighbour = _create_neighbour

    def _delete_neighbour(self, step: Step) -> None:
        res: Neighbour = step.resource
        with contextlib.suppress(NetlinkError):
            self.ipr(res.ns).neigh("del", dst=res.ip, ifindex=self._index(res.ns, res.ifname))

    # daemons
    def _create_daemon(self, step: Step) -> None:
        res: Daemon = step.resource
        self.daemons.stop(res.name)  # a stale one from an earlier run, if any
        self.daemons.start(res.name, res.ns, list(res.argv), dict(res.files), dict(res.env), res.digest(),
                           res.launch_digest())

    def _update_daemon(self, step: Step) -> None:
        res: Daemon = step.resource
        old: Daemon = step.old
        same_process = old.launch_digest() == res.launch_digest()
        if not (same_process and res.reload_signal and self.daemons.reload(
                res.name, dict(res.files), res.reload_signal, res.digest(), res.launch_digest())):
            self._create_daemon(step)

    def _delete_daemon(self, step: Step) -> None:
        self.daemons.stop(step.resource.name)

    # shaping and filters
    def _delete_shaping(self, step: Step) -> None:
        res: Shaping = step.resource
        if self._lookup(res.ns, res.ifname) is None:
            return
        self._run_in(res.ns, ["tc", "-batch", "-"], "\n".join(tc.render_delete(res.ifname)) + "\n", check=False)
        self._set_token(res.ns, res.ifname, "tc", None)

    def _create_filter(self, step: Step) -> None:
        res: IsolationFilter = step.resource
        self._run_in(res.ns, ["nft", "-f", "-"], nft.render(res, self.marker))
        self._set_token(res.ns, "lo", "nft", res.digest())

    _update_filter = _create_filter

    def _delete_filter(self, step: Step) -> None:
        res: IsolationFilter = step.resource
        self._run_in(res.ns, ["nft", "-f", "-"], nft.render_delete(), check=False)
        self._set_token(res.ns, "lo", "nft", None)

