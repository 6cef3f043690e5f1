"""`vispd access profile` and `vispd access revoke`: what a remote user needs, and taking
it away again — each through the user's access type (compiler.access_types), with the
topology's credential store (access.credentials) and, for revocation, the servers'
management sockets (access.openvpn): other clients never notice.

I/O: the credential store and the servers' management sockets.
"""
from __future__ import annotations

from access import openvpn
from compiler.access import server_context
from compiler.access_types import ACCESS_TYPES
from compiler.context import ControllerState, PlanContext
from model.errors import VispdError
from model.schema import Topology

from .credentials import gather, store
from .state import TopologyState


def _points(plan, slice_name: str, user: str, kind: str | None, node: str | None) -> list:
    return [p for p in plan.access_points if p.slice == slice_name and user in p.users
            and (kind is None or p.type == kind) and (node is None or p.node == node)]


def _context(topo: Topology) -> tuple[PlanContext, object]:
    runtime = TopologyState(topo.name).runtime
    state = ControllerState(credentials=gather(topo, runtime, create=False))
    return PlanContext(topo, runtime, state), store(runtime)


def profile(topo: Topology, plan, slice_name: str, user: str, kind: str | None, node: str | None) -> str:
    """The client configuration of `user`: an .ovpn with inline certificates, a wg-quick
    file, or PPTP's server, user and password."""
    matches = _points(plan, slice_name, user, kind, node)
    if not matches:
        raise VispdError(f"user '{user}' has no {kind or 'remote'} access point in slice '{slice_name}'"
                         + (f" on {node}" if node else ""))
    if len(matches) > 1:
        where = ", ".join(f"{p.type} on {p.node}" for p in matches)
        raise VispdError(f"'{user}' has several access points ({where}): choose with --type/--node")
    point = matches[0]
    ctx, credentials = _context(topo)
    return ACCESS_TYPES[point.type].profile(server_context(ctx, point), user, credentials)


def revoke(topo: Topology, plan, slice_name: str, user: str) -> list[str]:
    """Take `user`'s access away in the slice, at every access point whose type can."""
    points = [p for p in _points(plan, slice_name, user, None, None) if ACCESS_TYPES[p.type].REVOCABLE]
    if not points:
        raise VispdError(f"user '{user}' has no OpenVPN access in slice '{slice_name}'")
    ctx, credentials = _context(topo)
    said: list[str] = []
    for kind in sorted({p.type for p in points}):
        contexts = [server_context(ctx, p) for p in points if p.type == kind]
        said += ACCESS_TYPES[kind].revoke(contexts, user, credentials, openvpn)
    return said
