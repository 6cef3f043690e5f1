"""The Host port (pure: declarations only): everything a resource recipe may ask of the
machine, and the views of what a namespace holds that observation reads.

Recipes in this package call these verbs; the kernel backend (dataplane.kernel) implements
them with netlink, tc, nft and processes, and the Mininet backend overrides how a namespace
and a veth pair come to exist. Nothing else in the compiler calls them.

A namespace argument may be `model.naming.HOME_NS`: the machine's own namespace (the one
vispd runs in), where only what vispd lends itself (`borrow`, `borrow_sysctl`) or marks as
its own is ever changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class DeviceView:
    """An owned device (its ifalias carries the topology's marker), as the kernel shows it."""

    ifname: str
    kind: str  # IFLA_INFO_KIND: veth, macvlan, tun...
    tokens: dict  # the marker's key=value tokens (d=DIGEST, tc=DIGEST, peer=NS/IF, role=peer)
    mtu: int
    up: bool
    mac: str = ""
    noarp: bool = False


@dataclass(frozen=True)
class NamespaceView:
    """What one owned namespace holds that vispd may own."""

    ns: str
    node: str
    slice: str | None
    lo_tokens: dict
    broken: bool = False  # journaled as ours but unreadable (a run killed mid-creation)
    devices: tuple[DeviceView, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (device, cidr) on owned devices and lo
    neighbours: tuple[tuple[str, str, str], ...] = ()  # (device, ip, mac): permanent, owned devices
    routes: tuple[tuple[int, str, str], ...] = ()  # (table, dst, gateway or "") of vispd's route protocol
    rules: tuple[tuple[str, int, int, bool], ...] = ()  # (input device, table, priority, blackhole) of vispd's rules
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunningDaemon:
    name: str
    ns: str
    digest: str  # of the whole planned daemon
    launch: str  # of its namespace, command line and environment


class Host(Protocol):
    marker: str  # the ownership marker of the topology (resources.base.owner_marker)

    # namespaces
    def netns_exists(self, ns: str) -> bool: ...
    def netns_create(self, ns: str) -> None: ...
    def netns_delete(self, ns: str) -> None: ...
    def journal(self, names: list[str]) -> None: ...
    # `routing: own` slivers (dataplane.userns): a network namespace owned by a user namespace
    # of its own whose root is the slice (uid, gid outside)
    def netns_create_owned(self, ns: str, uid: int, gid: int) -> None: ...
    def netns_owned_elsewhere(self, ns: str) -> bool:
        """Whether another user namespace than vispd's owns `ns` (its slice is root there)."""
        ...
    def netns_root_ids(self, ns: str) -> tuple[int, int] | None:
        """(uid, gid) the root of the user namespace owning `ns` is, or None (vispd's own)."""
        ...
    def unreadable_by(self, path: str, uid: int, gid: int) -> str | None:
        """Why a process of uid/gid could not read file `path`, or None."""
        ...
    def set_sysctls(self, ns: str, sysctls: tuple[tuple[str, str], ...]) -> None: ...

    # devices
    def clear_name(self, ns: str, ifname: str) -> None: ...
    def veth_create(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, mtu: int,
                    mac: str = "", peer_mac: str = "") -> None: ...
    def macvlan_create(self, ns: str, ifname: str, lower_ns: str, lower_ifname: str, mac: str,
                       mtu: int) -> None: ...
    def tuntap_create(self, ns: str, ifname: str, mode: str, uid: int, gid: int) -> None: ...
    def device_delete(self, ns: str, ifname: str) -> None: ...
    def device_exists(self, ns: str, ifname: str) -> bool: ...
    def mark(self, ns: str, ifname: str, tokens: dict | None, replace: bool = False, *, up: bool | None = None,
             arp: bool | None = None, mtu: int | None = None) -> None: ...

    # what the machine lends (compiler.resources.adopted, compiler.resources.forward): recorded
    # durably before it is changed, given back as it was found
    def borrow_refusal(self, original: str, ns: str, ifname: str) -> str | None:
        """Why the machine's interface `original` cannot become `ns`/`ifname` (missing, already
        used, the machine's way out), or None."""
        ...
    def borrow(self, ns: str, ifname: str, original: str) -> None:
        """Record `original` as it is (name, MTU, state, addresses, routes), then move it into
        `ns` renamed `ifname`; completes a borrow a killed run left half-done."""
        ...
    def give_back(self, ns: str, ifname: str) -> None:
        """Move the borrowed `ns`/`ifname` back to the machine as it was recorded."""
        ...
    def borrow_sysctl(self, key: str, value: str) -> str:
        """Set a sysctl of the machine's namespace, recording the value it had (returned)."""
        ...
    def give_back_sysctl(self, key: str) -> None: ...
    def routes_overlapping(self, ns: str, prefix: str) -> list[str]:
        """Routes of `ns` (every table but `local`) that overlap `prefix`, through devices
        vispd does not own, as `ip route` would print them."""
        ...
    def nft_table_names(self, ns: str, family: str) -> list[str]: ...

    # addresses, neighbours, routes
    def address_replace(self, ns: str, ifname: str, cidr: str) -> None: ...
    def address_delete(self, ns: str, ifname: str, cidr: str) -> None: ...
    def neighbour_replace(self, ns: str, ifname: str, ip: str, mac: str) -> None: ...
    def neighbour_delete(self, ns: str, ifname: str, ip: str) -> None: ...
    def routes_apply(self, ns: str, prefsrc: str, changes: list[tuple[str, str | None]], table: int = 254) -> list: ...
    def rule_add(self, ns: str, iif: str, table: int, priority: int, blackhole: bool = False) -> None: ...
    def rule_delete(self, ns: str, iif: str, table: int, priority: int, blackhole: bool = False) -> None: ...

    # batch tools (tc, nft) and their state
    def run_batch(self, ns: str, argv: list[str], script: str, check: bool = True) -> None: ...
    def qdisc_root_kind(self, ns: str, ifname: str) -> str | None: ...
    def nft_table_comment(self, ns: str, family: str, table: str) -> str | None: ...

    # the node's BPF guard (compiler.resources.bpfguard): programs named by their digest
    def bpf_guard_apply(self, ns: str, hook: str, devices: tuple) -> list[str]:
        """Bring the namespace's programs to `devices` (GuardedDevice values) on `hook`
        ("tcx" | "clsact"), swapping changed ones atomically; what changed."""
        ...
    def bpf_guard_pending(self, ns: str, hook: str, devices: tuple) -> list[str]:
        """What bpf_guard_apply would change ([]: the kernel holds exactly these programs)."""
        ...
    def bpf_guard_delete(self, ns: str) -> list[str]:
        """Remove vispd's programs from every device of the namespace (on any hook)."""
        ...

    # daemons
    def daemon_start(self, name: str, ns: str, argv: list[str], files: dict, env: dict, digest: str,
                     launch: str) -> None: ...
    def daemon_reload(self, name: str, files: dict, signal: int, digest: str, launch: str) -> bool: ...
    def daemon_stop(self, name: str) -> None: ...
    def daemons_running(self) -> list[RunningDaemon]: ...
    def daemon_missing(self, name: str, ns: str, listens) -> list:
        """The listening places the running daemon `name` (with its descendants) does not hold
        (all of them when it does not run)."""
        ...
    def daemon_log(self, name: str) -> str: ...
    def port_holders(self, ns: str, listen) -> list[tuple[int, str]]:
        """(pid, command) of processes holding `listen`'s place in `ns`."""
        ...
