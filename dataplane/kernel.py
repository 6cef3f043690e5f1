"""The kernel backend: observe what vispd owns for a topology, and apply diff steps.

The only module (with `netns`, `tc`, `nft`) that changes the kernel. Ownership markers:

* namespaces: `lo`'s ifalias is `vispd:TOPO d=DIGEST [nft=DIGEST]`, and the state journal
  lists every namespace vispd started to create (so a crash between creating and marking
  one still leaves it ours);
* devices: ifalias `vispd:TOPO d=DIGEST [tc=DIGEST] [peer=NS/IF]`, DIGEST being the hash of
  the planned resource, so a changed plan is seen without re-reading every attribute;
* routes: protocol number `VISPD_RTPROTO`; addresses and neighbours: only on owned devices;
* nftables: table `netdev vispd` in owned node namespaces only.

Nothing without a marker is ever reported, changed or deleted.
"""
from __future__ import annotations

import contextlib
import socket
import subprocess
from dataclasses import replace
from typing import Callable, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vispd.diff import Step
from vispd.errors import VispdError
from vispd.naming import NS_PREFIX, parse_ns
from vispd.plan import (
    Address,
    Daemon,
    Device,
    IsolationFilter,
    Macvlan,
    Neighbour,
    Netns,
    Resource,
    Route,
    Shaping,
    TunTap,
    Veth,
    owner_marker,
)

from bgp.fib import Fib

from . import netns, nft, tc
from .daemons import DaemonDirectory
from .rtnl import RawLinks

VISPD_RTPROTO = 77  # route protocol number that marks vispd's routes
MAIN_TABLE = 254
NUD_PERMANENT = 0x80
IFF_UP = 0x1
IFF_NOARP = 0x80


class ApplyError(VispdError):
    def __init__(self, step: Step, cause: BaseException):
        super().__init__(f"{step.describe()}: {cause}")
        self.step = step


def _tokens(alias: str | None, marker: str) -> dict[str, str] | None:
    """Parse an ownership alias; None when it is not ours."""
    if not alias:
        return None
    parts = alias.split()
    if not parts or parts[0] != marker:
        return None
    return dict(p.split("=", 1) for p in parts[1:] if "=" in p)


def _alias(marker: str, tokens: dict[str, str]) -> str:
    return " ".join([marker] + [f"{k}={v}" for k, v in sorted(tokens.items())])


class KernelBackend:
    """Observes and changes the kernel for one topology, on this machine."""

    def __init__(self, topology: str, journal: Callable[[list[str]], None] | None = None,
                 known_namespaces: Iterable[str] = (), run_dir: str | None = None):
        self.topology = topology
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

    # -- observe -----------------------------------------------------------------------
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
                tokens = _tokens(lo.get_attr("IFLA_IFALIAS"), self.marker)
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
            tokens = _tokens(link.get_attr("IFLA_IFALIAS"), self.marker)
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
            if want is not None and want.gateway == (gateway or "") and want.metric == 0:
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
        if tokens.get("role") != "peer":
            healthy = (
                want is not None
                and tokens.get("d") == want.digest()
                and mtu == want.mtu
                and link["flags"] & IFF_UP
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
            if isinstance(resource, Route) and resource.metric == 0 and (
                    step.old is None or step.old.metric == 0):
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
        netns.create(res.ns)
        self._fresh.add(res.ns)
        self._aliases[(res.ns, "lo")] = {}
        self._update_netns(step)

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
        netns.kill_inside(ns)
        self._drop_socket(ns)
        self._forget_index(ns)
        netns.remove(ns)

    # devices
    def _create_veth(self, step: Step) -> None:
        res: Veth = step.resource
        ipr = self.ipr(res.ns)
        self._clear_name(res.ns, res.ifname)
        self._clear_name(res.peer_ns, res.peer_ifname)
        peer_fd = open(netns.path(res.peer_ns))
        try:
            peer = {"ifname": res.peer_ifname, "net_ns_fd": peer_fd.fileno(), "mtu": res.mtu}
            if res.peer_mac:
                peer["address"] = res.peer_mac
            extra = {"address": res.mac} if res.mac else {}
            ipr.link("add", ifname=res.ifname, kind="veth", mtu=res.mtu, peer=peer, **extra)
        finally:
            peer_fd.close()
        self._aliases[(res.ns, res.ifname)] = {"peer": f"{res.peer_ns}/{res.peer_ifname}"}
        self._aliases[(res.peer_ns, res.peer_ifname)] = {}
        self._set_token(res.ns, res.ifname, "d", res.digest(), state="up", arp=res.arp)
        self._set_token(res.peer_ns, res.peer_ifname, "role", "peer", state="up", arp=res.arp)

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

    def _create_route(self, step: Step) -> None:
        res: Route = step.resource
        spec = dict(dst=res.dst, gateway=res.gateway, oif=self._index(res.ns, res.ifname),
                    proto=VISPD_RTPROTO)
        if res.prefsrc:
            spec["prefsrc"] = res.prefsrc
        if res.metric:
            spec["priority"] = res.metric
        self.ipr(res.ns).route("replace", **spec)

    def _update_route(self, step: Step) -> None:
        old: Route = step.old
        if old.metric != step.resource.metric:
            self._delete_route(Step("delete", old))
        self._create_route(step)

    def _delete_route(self, step: Step) -> None:
        res: Route = step.resource
        spec = dict(dst=res.dst, proto=VISPD_RTPROTO, table=254)
        if res.metric:
            spec["priority"] = res.metric
        with contextlib.suppress(NetlinkError):
            self.ipr(res.ns).route("del", **spec)

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

