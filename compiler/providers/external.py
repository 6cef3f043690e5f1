"""A real provider (pure): `external: {interface: NAME, address: A.B.C.D/LEN, peer: A.B.C.E}`.

Its access link is one of the machine's interfaces, borrowed into the egress node's
namespace as `x-PROVIDER` (compiler.resources.adopted: plain L3, ARP on, its own MTU kept)
and given back as it was found on `down`; the border router's session runs from `address`
to `peer`. vispd starts nothing for it and the lab world plans nothing for it.
"""
from __future__ import annotations

from model.naming import access_ifname
from model.schema import Provider

from ..resources import Adopted
from .base import ProviderKind


class External(ProviderKind):
    NAME = "external"
    EMULATED = False

    def check(self, provider: Provider, path: tuple, say) -> None:
        external = provider.external
        where = path + ("external",)
        subnet = external.address.network
        if external.peer not in subnet:
            say(where + ("peer",), f"peer {external.peer} is outside {subnet}, the subnet of address "
                f"{external.address}: the provider must be on the access link")
        elif external.peer == external.address.ip:
            say(where + ("peer",), f"peer {external.peer} is the border's own address")
        for name, value in (("address", external.address.ip), ("peer", external.peer)):
            if subnet.prefixlen < 31 and value in (subnet.network_address, subnet.broadcast_address):
                say(where + (name,), f"{value} is the {'network' if value == subnet.network_address else 'broadcast'}"
                    f" address of {subnet}, not a host's")
        for key, default in (("lab_routes", 0), ("lab_daemon", "bird")):
            if getattr(provider, key) != default:
                say(path + (key.replace("_", "-"),), f"{key.replace('_', '-')} is for emulated providers: "
                    f"'{provider.name}' is external (vispd starts nothing for it)")

    def plan_access_device(self, provider: Provider, ctx, parts) -> None:
        parts.add(Adopted(node=provider.node, ns=ctx.node_ns(provider.node), ifname=access_ifname(provider.name),
                          original=provider.external.interface, arp=True))

    def session_addresses(self, provider: Provider, index: int, ctx) -> tuple[str, str]:
        return str(provider.external.address), str(provider.external.peer)
