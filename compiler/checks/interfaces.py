"""Semantic checks of the machine's own interfaces a topology names (pure): each serves one
purpose (a link's end, a real provider's access link, the public interface), and access
points behind `public: {interface:}` can be forwarded there — one access point per port on
the one public address, and only types whose traffic a port forward carries."""
from __future__ import annotations

from ..access_types import ACCESS_TYPES


def check_interface_uses(topo, say) -> None:
    seen: dict[str, str] = {}
    for path, name, what in _uses(topo):
        if name in seen:
            say(path, f"interface {name} is already {seen[name]}: an interface serves one purpose")
        else:
            seen[name] = what


def _uses(topo) -> list[tuple[tuple, str, str]]:
    uses = []
    for i, link in enumerate(topo.links):
        for node, name in (link.interfaces or {}).items():
            uses.append((("links", i, "interfaces", node), name,
                         f"the end at '{node}' of link {link.between[0]}–{link.between[1]}"))
    for i, provider in enumerate(topo.providers):
        if provider.external is not None:
            uses.append((("providers", i, "external", "interface"), provider.external.interface,
                         f"the access link to provider '{provider.name}'"))
    if topo.public.interface:
        uses.append((("public", "interface"), topo.public.interface, "the public interface"))
    return uses


def check_public_interface(topo, say, slice_names: set[str]) -> None:
    public = topo.public
    if public.address is not None and public.interface is None:
        say(("public", "address"), "address: is the address clients dial on the public interface: "
            "give `interface:` too")
    if public.interface is None:
        return
    forwarded: dict[tuple[str, int], str] = {}
    for i, entry in enumerate(topo.access):
        kind = ACCESS_TYPES[entry.type]
        if not kind.REMOTE or entry.slice not in slice_names:
            continue
        if not kind.FORWARDABLE:
            say(("access", i, "type"), f"{entry.type} access cannot be reached on the public interface "
                f"{public.interface}: its traffic is not carried by forwarding a port")
            continue
        port = entry.port or kind.DEFAULT_PORT
        nodes = topo.slice_nodes(topo.slice(entry.slice)) if entry.nodes == "all" else entry.nodes
        for node in nodes:
            here = f"{entry.type} access point of slice '{entry.slice}' on '{node}'"
            other = forwarded.setdefault((kind.TRANSPORT, port), here)
            if other != here:
                say(("access", i, "port") if entry.port else ("access", i, "nodes"),
                    f"{kind.TRANSPORT} port {port} of {public.interface} is already forwarded to the {other}: "
                    "the public address forwards a port to one access point (give each its own `port:`)")
                break
