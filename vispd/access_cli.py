"""`vispd access profile` and `vispd access revoke`: what a remote user needs, and taking
it away again (OpenVPN: the slice's CRL plus a disconnect through the server's
management socket, so other clients never notice)."""
from __future__ import annotations

import os

from compiler.access_plan import client_routes, keys_dir, openvpn_server, pki_dir, wireguard_server
from .credentials import gather
from model.errors import VispdError
from model.schema import Topology
from .state import TopologyState


def _point(plan, slice_name: str, user: str, kind: str | None, node: str | None):
    matches = [p for p in plan.access_points if p.slice == slice_name and user in p.users
               and (kind is None or p.type == kind) and (node is None or p.node == node)]
    if not matches:
        raise VispdError(f"user '{user}' has no {kind or 'remote'} access point in slice '{slice_name}'"
                         + (f" on {node}" if node else ""))
    if len(matches) > 1:
        where = ", ".join(f"{p.type} on {p.node}" for p in matches)
        raise VispdError(f"'{user}' has several access points ({where}): choose with --type/--node")
    return matches[0]


def profile(topo: Topology, plan, slice_name: str, user: str, kind: str | None, node: str | None) -> str:
    """The client configuration of `user`: an .ovpn with inline certificates, or a
    wg-quick file."""
    point = _point(plan, slice_name, user, kind, node)
    state_dir = TopologyState(topo.name).dir
    sl = topo.slice(slice_name)
    if point.type == "openvpn":
        from access import openvpn

        try:
            return openvpn.client_profile(pki_dir(state_dir, slice_name),
                                          openvpn_server(topo, sl, point.node, point, state_dir), user)
        except FileNotFoundError:
            raise VispdError(f"no certificate for '{user}' (revoked, or run `vispd up` first)") from None
    if point.type == "wireguard":
        from access import wireguard

        cfg = wireguard_server(topo, sl, point.node, point, state_dir, gather(topo, state_dir, create=False))
        key_dir = keys_dir(state_dir, slice_name)
        if not os.path.exists(os.path.join(key_dir, f"client-{user}.key")):
            raise VispdError(f"'{user}' brings their own WireGuard key, or `vispd up` has not run yet")
        return wireguard.client_profile(key_dir, cfg, user)
    if point.type == "pptp":
        import json

        from compiler.access_plan import pptp_users_file

        try:
            with open(pptp_users_file(state_dir, slice_name)) as handle:
                password = json.load(handle)["users"][user]
        except (OSError, KeyError, ValueError):
            raise VispdError(f"no PPTP password for '{user}' yet: run `vispd up` first") from None
        return (f"# vispd: PPTP for {user} in slice {slice_name} (UNENCRYPTED legacy access)\n"
                f"server {point.public_address}\nuser {user}\npassword {password}\n"
                f"routes {' '.join(client_routes(topo, sl))}\n")
    raise VispdError(f"{point.type} access has no profile to hand out")


def revoke(topo: Topology, plan, slice_name: str, user: str) -> list[str]:
    """Revoke `user`'s OpenVPN certificate in the slice and drop their live sessions."""
    from access import openvpn, pki

    state_dir = TopologyState(topo.name).dir
    points = [p for p in plan.access_points if p.slice == slice_name and p.type == "openvpn" and user in p.users]
    if not points:
        raise VispdError(f"user '{user}' has no OpenVPN access in slice '{slice_name}'")
    serial = pki.revoke(pki_dir(state_dir, slice_name), user)
    said = [f"revoked {user} (certificate serial {serial:x}) in slice {slice_name}"]
    for point in points:
        socket_path = os.path.join(state_dir, "run", f"{point.daemon}.mgmt")
        try:
            dropped = openvpn.disconnect(socket_path, user)
            said.append(f"{point.node}: {dropped} live session(s) closed")
        except OSError as exc:
            said.append(f"{point.node}: server not reachable ({exc.strerror or exc}); the CRL applies at its next start")
    return said
