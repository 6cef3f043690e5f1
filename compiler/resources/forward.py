"""The machine's side of `public: {interface: NAME}` (pure data, nftables rendering and
recipe): remote clients reach the access points on the machine's own public address.

The machine keeps its interface (it is usually its only way out). Each node with a remote
access point has a veth to the machine's namespace (compiler.public_interface): its end
there takes the role the lab underlay's router has (its address and MAC, ARP off, a static
neighbour per sliver public address). This resource holds, in the machine's namespace:

* table `ip vispd_TOPO` (its comment is the topology's marker with the digest and the
  interface): prerouting DNAT of each access port arriving on the interface for one of the
  machine's own addresses (`fib daddr type local`) to the access point's sliver; masquerade
  toward the slivers, so replies go back through the machine without the slivers routing
  the whole Internet (the servers see clients as the link's address); and a forward guard:
  only DNATed connections pass between the interface and the nodes' links, and nothing else
  reaches or leaves those links — a slice cannot use the machine as a router;
* per-interface forwarding on the interface (`net.ipv4.conf.NAME.forwarding=1`), borrowed
  with its old value recorded and given back on delete; when it was off, the guard also
  drops anything else that would now be forwarded from the interface, as before;
* forwarding on its own ends of the links (they go with them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from model.naming import HOME_NS

from .base import DeviceRef, Resource

FAMILY = "ip"


def table_name(marker: str) -> str:
    """`vispd_TOPO` from the marker `vispd:TOPO` (topology names have no '_', so '-' → '_'
    keeps names apart)."""
    return "vispd_" + marker.partition(":")[2].replace("-", "_")


def forwarding_key(ifname: str) -> str:
    return f"net.ipv4.conf.{ifname}.forwarding"


@dataclass(frozen=True, slots=True)
class PortForward(Resource):
    """`interface`'s access ports forwarded to the slivers over the nodes' links."""

    KIND: ClassVar[str] = "forward"
    PHASE: ClassVar[int] = 5
    MODE: ClassVar[str] = "update"
    interface: str = ""
    # (the machine's end of a node's link, its address/len, ((sliver public address, MAC), ...))
    links: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()
    ports: tuple[tuple[str, int, str], ...] = ()  # (udp|tcp, port, sliver public address)

    def describe(self) -> str:
        return f"public interface {self.interface or '?'}: {len(self.ports)} access port(s) forwarded"

    def bound_devices(self) -> tuple[DeviceRef, ...]:
        return tuple((HOME_NS, device) for device, _, _ in self.links)

    def refusal(self, host, old=None) -> str | None:
        if not host.device_exists(HOME_NS, self.interface):
            return f"public interface {self.interface} does not exist on this machine"
        for _, cidr, _ in self.links:
            clash = host.routes_overlapping(HOME_NS, cidr)
            if clash:
                return (f"the public side's link {cidr} overlaps this machine's route '{clash[0]}': "
                        "choose another `public: prefix`")
        mine = table_name(host.marker)
        for table in host.nft_table_names(HOME_NS, FAMILY):
            if table.startswith("vispd_") and table != mine:
                text = host.nft_table_comment(HOME_NS, FAMILY, table) or ""
                for proto, port, _ in self.ports:
                    if f'iifname "{self.interface}"' in text and f"{proto} dport {port} " in text:
                        return f"{proto} port {port} on {self.interface} is already forwarded by table {table}"
        return None

    def create(self, host) -> None:
        for device, cidr, neighbours in self.links:
            host.address_replace(HOME_NS, device, cidr)
            for ip, mac in neighbours:
                host.neighbour_replace(HOME_NS, device, ip, mac)
            host.set_sysctls(HOME_NS, ((forwarding_key(device), "1"),))
        was = host.borrow_sysctl(forwarding_key(self.interface), "1")
        host.run_batch(HOME_NS, ["nft", "-f", "-"], render(self, host.marker, closed=was.strip() == "0"))

    def update(self, host, old) -> None:
        if old is not None and old.interface and old.interface != self.interface:
            host.give_back_sysctl(forwarding_key(old.interface))
        self.create(host)

    def delete(self, host) -> None:
        host.run_batch(HOME_NS, ["nft", "-f", "-"], render_delete(host.marker), check=False)
        if self.interface:
            host.give_back_sysctl(forwarding_key(self.interface))

    @classmethod
    def observe_machine(cls, host, desired) -> list[Resource]:
        text = host.nft_table_comment(HOME_NS, FAMILY, table_name(host.marker))
        if text is None or host.marker not in text:
            return []
        want = desired.get((cls.KIND, HOME_NS))
        if want is not None and f"d={want.digest()}" in text:
            return [want]
        interface = text.split(" if=", 1)[1].split('"', 1)[0] if " if=" in text else ""
        return [cls(node="", ns=HOME_NS, interface=interface)]


def render(forward: PortForward, owner: str, closed: bool) -> str:
    """The table, replaced in one transaction; `closed`: forwarding was off on the interface."""
    table, public = table_name(owner), f'"{forward.interface}"'
    links = "{ " + ", ".join(f'"{device}"' for device, _, _ in forward.links) + " }"
    lines = [f"add table {FAMILY} {table}", f"delete table {FAMILY} {table}", f"table {FAMILY} {table} {{",
             f'  comment "{owner} d={forward.digest()} if={forward.interface}"',
             "  chain access_in {", "    type nat hook prerouting priority dstnat; policy accept;"]
    lines += [f"    iifname {public} fib daddr type local {proto} dport {port} dnat to {address}"
              for proto, port, address in forward.ports]
    lines += ["  }", "  chain access_out {", "    type nat hook postrouting priority srcnat; policy accept;",
              f"    oifname {links} ct status dnat masquerade", "  }",
              "  chain access_guard {", "    type filter hook forward priority filter; policy accept;",
              f"    iifname {public} oifname {links} ct status dnat accept",
              f"    iifname {links} oifname {public} ct status dnat accept",
              f"    oifname {links} drop", f"    iifname {links} drop"]
    if closed:
        lines.append(f"    iifname {public} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def render_delete(owner: str) -> str:
    table = table_name(owner)
    return f"add table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"
