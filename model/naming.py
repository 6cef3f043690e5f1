"""Names of kernel objects, derived from the topology (pure, deterministic).

Namespaces: `vispd.TOPO.NODE` for a substrate node, `vispd.TOPO.NODE.SLICE` for a sliver
(YAML names cannot contain dots, so the split is unambiguous). Interface names fit the
kernel's 15-character limit; MAC addresses are locally administered and derived from a
hash of what they identify, so the same YAML always yields the same addresses.
"""
from __future__ import annotations

import hashlib
import zlib

IFNAMSIZ = 15
NS_PREFIX = "vispd."
HOME_NS = ""  # the machine's own namespace (the one vispd runs in), where borrowed interfaces live


def node_ns(topology: str, node: str) -> str:
    return f"{NS_PREFIX}{topology}.{node}"


def sliver_ns(topology: str, node: str, slice_name: str) -> str:
    return f"{NS_PREFIX}{topology}.{node}.{slice_name}"


def lab_ns(topology: str, host: str) -> str:
    """Namespace of a lab host outside the vISP (an emulated provider, the Internet):
    `vispd.TOPO.+HOST` ('+' cannot start a node name, so it never clashes)."""
    return f"{NS_PREFIX}{topology}.+{host}"


def parse_ns(name: str) -> tuple[str, str, str | None] | None:
    """(topology, node, slice or None) for a vispd namespace name, else None."""
    if not name.startswith(NS_PREFIX):
        return None
    parts = name[len(NS_PREFIX):].split(".")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None


def _short_hash(*parts: str, length: int = 4) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def short_node_name(name: str, site: str | None, room: int) -> str:
    """A node's name as it appears inside interface names: its site code, else its name,
    shortened with a hash suffix when it does not fit in `room` characters."""
    text = site or name
    if len(text) <= room:
        return text
    return text[: room - 4] + _short_hash(name)


def substrate_ifname(peer: str, peer_site: str | None) -> str:
    """Name, in a node namespace, of the substrate device toward `peer`."""
    return "to-" + short_node_name(peer, peer_site, IFNAMSIZ - 3)


def virtual_ifname(peer: str, peer_site: str | None) -> str:
    """Name, in a sliver, of the slice's interface on the virtual link toward `peer`."""
    return "v-" + short_node_name(peer, peer_site, IFNAMSIZ - 2)


def hashed_ifname(prefix: str, *identity: str) -> str:
    """`prefix` + hex digest of `identity`, exactly IFNAMSIZ characters: the same identity
    always gives the same name, different identities collide with probability 16^-n (for
    devices whose names must be unique machine-wide, e.g. wireguard-go's sockets)."""
    room = IFNAMSIZ - len(prefix)
    if room < 8:
        raise ValueError(f"prefix {prefix!r} leaves fewer than 8 hash characters")
    return prefix + hashlib.sha256("\0".join(identity).encode()).hexdigest()[:room]


def home_link_ifname(topology: str, node: str) -> str:
    """Name, in the machine's own namespace, of the link toward `node`'s public side
    (`public: {interface:}`): hashed, since that namespace is shared by every topology."""
    return hashed_ifname("vp", "public", topology, node)


def access_ifname(provider: str) -> str:
    """Name of the access device toward `provider` in its egress node's namespace."""
    return "x-" + short_node_name(provider, None, 13)


def sliver_access_ifname(provider: str) -> str:
    """Name of a slice's interface toward `provider` in its egress sliver."""
    return "p-" + short_node_name(provider, None, 13)


def mac_address(*identity: str) -> str:
    """A unicast, locally administered MAC derived from `identity` (02:xx:xx:xx:xx:xx)."""
    digest = hashlib.sha256("\0".join(identity).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def spread_by_name(names: list[str], base: int, span: int, taken: set[int] = frozenset()) -> dict[str, int]:
    """Give each name a number in [base, base+span) derived from the name alone (crc32),
    probing upward on a clash (names taken in sorted order, so the result does not depend
    on declaration order). Used for slice uids and HTB class ids."""
    used = set(taken)
    result = {}
    for name in sorted(names):
        offset = zlib.crc32(name.encode()) % span
        while base + offset in used:
            offset = (offset + 1) % span
        result[name] = base + offset
        used.add(base + offset)
    return result


def host_names(namespaces: list[str]) -> dict[str, str]:
    """A short, readable host name for each vispd namespace (for Mininet and the lab CLI):
    a node is its name (`seattle`), a sliver is `SLICE-NODE` (`plb-seattle`), a lab host
    is its name (`mae-east`, `internet`). Names that would clash keep a distinguishing
    prefix (`node-`, `lab-`) so every host stays addressable."""
    wanted: dict[str, str] = {}
    for ns in namespaces:
        parsed = parse_ns(ns)
        if parsed is None:
            continue
        _, node, slice_name = parsed
        if slice_name:
            wanted[ns] = f"{slice_name}-{node}"
        else:
            wanted[ns] = node[1:] if node.startswith("+") else node
    counts: dict[str, int] = {}
    for name in wanted.values():
        counts[name] = counts.get(name, 0) + 1
    names = {}
    for ns, name in wanted.items():
        if counts[name] > 1:
            _, node, slice_name = parse_ns(ns)
            name = name if slice_name else ("lab-" + node[1:] if node.startswith("+") else "node-" + node)
        names[ns] = name
    return names
