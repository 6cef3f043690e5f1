"""What the machine lends vispd, and giving it back as it was found: its interfaces
(compiler.resources.adopted) and sysctls of its own namespace (compiler.resources.forward).

Before an interface is moved, its record — name, MTU, state, ARP, alias, addresses, the
routes through it, and which namespace it came from — is written (atomically, fsynced) to
`STATE/TOPO/borrowed/`; it is forgotten only once the interface is back. So a run killed at
any point leaves enough to give it back: `vispd down` (or the next `up`) finishes the job,
and the removal of a namespace gives back whatever is recorded as inside it first. A
borrowed sysctl is recorded the same way (its old value) before it is changed.

I/O: the record files; the kernel through the pyroute2 sockets `dataplane.host` hands in.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

IFF_UP, IFF_NOARP = 0x1, 0x80
RT_TABLE_LOCAL = 255
RTPROT_KERNEL = 2
# Devices the kernel will not move to another namespace (NETIF_F_NETNS_LOCAL), or whose
# ports would stay behind.
STAY_HOME_KINDS = {"bridge", "bond", "team", "openvswitch", "vrf", "ipvlan"}
UPPER_KINDS = {"macvlan", "macvtap", "vlan", "ipvlan", "ipvtap", "vxlan"}


@dataclass
class Record:
    """An interface as the machine had it, and where vispd holds it."""

    original: str
    ns: str
    ifname: str
    home: int  # inode of the namespace it came from
    mtu: int
    up: bool
    arp: bool
    alias: str = ""
    addresses: list = field(default_factory=list)  # [family, address, prefixlen, broadcast or ""]
    routes: list = field(default_factory=list)  # main-table IPv4 routes through it (not the kernel's)


class Ledger:
    """The records of one topology (`directory`), and a look at its siblings' (other topologies
    under the same state root)."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, leaf: str) -> str:
        return os.path.join(self.directory, leaf)

    def _write(self, leaf: str, data: dict) -> None:
        os.makedirs(self.directory, exist_ok=True)
        tmp = self._path(leaf + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path(leaf))
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read(self, leaf: str) -> dict | None:
        try:
            with open(self._path(leaf)) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def _forget(self, leaf: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(leaf))

    # -- interfaces ------------------------------------------------------------------------
    @staticmethod
    def _device_leaf(ns: str, ifname: str) -> str:
        return f"device.{ns}.{ifname}.json"

    def record(self, record: Record) -> None:
        self._write(self._device_leaf(record.ns, record.ifname), asdict(record))

    def device(self, ns: str, ifname: str) -> Record | None:
        data = self._read(self._device_leaf(ns, ifname))
        return Record(**data) if data else None

    def devices(self) -> list[Record]:
        try:
            leaves = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        found = []
        for leaf in leaves:
            if leaf.startswith("device.") and leaf.endswith(".json"):
                data = self._read(leaf)
                if data:
                    found.append(Record(**data))
        return found

    def forget_device(self, ns: str, ifname: str) -> None:
        self._forget(self._device_leaf(ns, ifname))

    def holder(self, original: str) -> str | None:
        """The topology (under the same state root) that holds interface `original`."""
        topology_dir = os.path.dirname(self.directory)
        root = os.path.dirname(topology_dir)
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return None
        for name in names:
            other = Ledger(os.path.join(root, name, os.path.basename(self.directory)))
            if any(r.original == original for r in other.devices()):
                return name
        return None

    # -- sysctls ---------------------------------------------------------------------------
    def record_sysctl(self, key: str, value: str) -> None:
        if self._read(f"sysctl.{key}.json") is None:  # the first value found is the machine's
            self._write(f"sysctl.{key}.json", {"key": key, "value": value})

    def sysctl(self, key: str) -> str | None:
        data = self._read(f"sysctl.{key}.json")
        return data["value"] if data else None

    def sysctls(self) -> list[str]:
        try:
            leaves = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        return [leaf[len("sysctl."):-len(".json")] for leaf in leaves
                if leaf.startswith("sysctl.") and leaf.endswith(".json")]

    def forget_sysctl(self, key: str) -> None:
        self._forget(f"sysctl.{key}.json")



# -- reading the machine ---------------------------------------------------------------------
def snapshot(ipr, index: int, original: str, ns: str, ifname: str, home: int) -> Record:
    """The interface `index` of `ipr`'s namespace as it is now."""
    link = ipr.get_links(index)[0]
    addresses = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_addr(family=family, index=index):
            address = msg.get_attr("IFA_ADDRESS")
            if family == socket.AF_INET6 and address.startswith("fe80"):
                continue  # the kernel makes the link-local one again
            addresses.append([family, address, msg["prefixlen"], msg.get_attr("IFA_BROADCAST") or ""])
    routes = []
    for msg in ipr.get_routes(family=socket.AF_INET, table=254):
        if msg.get_attr("RTA_OIF") == index and msg["proto"] != RTPROT_KERNEL:
            routes.append({"dst": msg.get_attr("RTA_DST") or "0.0.0.0", "dst_len": msg["dst_len"],
                           "gateway": msg.get_attr("RTA_GATEWAY") or "", "priority": msg.get_attr("RTA_PRIORITY"),
                           "proto": msg["proto"], "scope": msg["scope"], "prefsrc": msg.get_attr("RTA_PREFSRC") or ""})
    return Record(original=original, ns=ns, ifname=ifname, home=home, mtu=link.get_attr("IFLA_MTU"),
                  up=bool(link["flags"] & IFF_UP), arp=not link["flags"] & IFF_NOARP,
                  alias=link.get_attr("IFLA_IFALIAS") or "", addresses=addresses, routes=routes)


def refusal(ipr, index: int | None, original: str, holder: str | None) -> str | None:
    """Why interface `original` (`index` in `ipr`'s namespace, None: not there) cannot be lent."""
    if index is None:
        if holder:
            return f"interface {original} is already used: topology '{holder}' holds it"
        return f"interface {original} does not exist on this machine"
    link = ipr.get_links(index)[0]
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    if original == "lo" or kind in STAY_HOME_KINDS:
        return f"interface {original} ({kind or 'loopback'}) cannot leave its namespace"
    master = link.get_attr("IFLA_MASTER")
    if master:
        return f"interface {original} is already used: it is a port of {_name(ipr, master)}"
    alias = link.get_attr("IFLA_IFALIAS") or ""
    if alias.startswith("vispd:"):
        return f"interface {original} is already used: it carries {alias.split()[0][6:]!r}'s vispd marker"
    for other in ipr.get_links():
        other_kind = other.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
        if (other_kind in UPPER_KINDS and other.get_attr("IFLA_LINK") == index
                and other.get_attr("IFLA_LINK_NETNSID") is None):
            return f"interface {original} is already used: {other.get_attr('IFLA_IFNAME')} ({other_kind}) is on it"
    if carries_default_route(ipr, index):
        return (f"interface {original} carries this machine's default route: it is the machine's way out, "
                "and vispd does not take it (give the link or provider another interface)")
    return None


def interface_address(ifname: str) -> str | None:
    """The first IPv4 address of the machine's interface `ifname` (in vispd's namespace)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=socket.AF_INET, index=found[0]):
            return msg.get_attr("IFA_ADDRESS")
    return None


def carries_default_route(ipr, index: int) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_routes(family=family):
            if msg["dst_len"] != 0 or msg.get_attr("RTA_TABLE", msg["table"]) == RT_TABLE_LOCAL:
                continue
            hops = [msg.get_attr("RTA_OIF")] + [hop["oif"] for hop in (msg.get_attr("RTA_MULTIPATH") or [])]
            if index in hops:
                return True
    return False


def _name(ipr, index: int) -> str:
    try:
        return ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
    except (NetlinkError, IndexError):
        return f"device {index}"


# -- giving back -----------------------------------------------------------------------------
def restore(ipr, raw, index: int, record: Record) -> None:
    """Put back, on the interface `index` now home again, what `record` says it had."""
    raw.set(index, alias=record.alias, mtu=record.mtu, arp=record.arp, up=record.up)
    for family, address, prefixlen, broadcast in record.addresses:
        extra = {"broadcast": broadcast} if broadcast else {}
        with contextlib.suppress(NetlinkError):
            ipr.addr("add", index=index, family=family, address=address, prefixlen=prefixlen, **extra)
    for route in record.routes:
        spec = {"dst": f"{route['dst']}/{route['dst_len']}", "oif": index, "proto": route["proto"],
                "scope": route["scope"], "table": 254}
        if route["gateway"]:
            spec["gateway"] = route["gateway"]
        if route["priority"] is not None:
            spec["priority"] = route["priority"]
        if route["prefsrc"]:
            spec["prefsrc"] = route["prefsrc"]
        with contextlib.suppress(NetlinkError):
            ipr.route("add", **spec)
