"""The node's isolation guard, rendered as one atomic nftables script (render is pure).

In each node namespace, table `netdev vispd` has a set of admitted (source MAC, destination
MAC) pairs (both ends of one slice's virtual link) and, per substrate device, an ingress
chain with policy drop that accepts only those pairs. Broadcast, multicast and frames
between different slices are dropped before macvlan demultiplexing sees them. The script
deletes and re-creates the table in one transaction, so an update is never half-applied.
"""
from __future__ import annotations

from compiler.plan import IsolationFilter

TABLE = "vispd"


def _chain_name(device: str) -> str:
    return "in_" + device.replace("-", "_")


def render(guard: IsolationFilter, owner: str) -> str:
    lines = [
        f"add table netdev {TABLE}",
        f"delete table netdev {TABLE}",
        f"table netdev {TABLE} {{",
        f'  comment "{owner}"',
        "  set pairs {",
        "    type ether_addr . ether_addr",
    ]
    if guard.pairs:
        elements = ", ".join(f"{src} . {dst}" for src, dst in guard.pairs)
        lines.append(f"    elements = {{ {elements} }}")
    lines.append("  }")
    for device in guard.devices:
        lines += [
            f"  chain {_chain_name(device)} {{",
            f'    type filter hook ingress device "{device}" priority -500; policy drop;',
            "    ether saddr . ether daddr @pairs accept",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_delete() -> str:
    return f"add table netdev {TABLE}\ndelete table netdev {TABLE}\n"
