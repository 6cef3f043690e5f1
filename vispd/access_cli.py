"""`vispd access profile` and `vispd access revoke`: what a remote user needs, and taking
it away again — each through the user's access type (compiler.access_types), with the
topology's credential store (access.credentials) and, for revocation, the running servers
(access.control: OpenVPN's management socket, WireGuard's `wg`): other clients never notice.

I/O: the credential store and the running servers (access.control).
"""
from __future__ import annotations

import dataclasses

from access import control
from compiler.access import server_context
from compiler.access_types import ACCESS_TYPES
from compiler.context import ControllerState, PlanContext
from compiler.resources import Daemon
from dataplane.borrow import interface_address
from model.errors import VispdError
from model.schema import Topology

from .credentials import gather, store
from .engine import kernel_backend, topology_plan
from .state import TopologyState


def _points(plan, slice_name: str, user: str, kind: str | None, node: str | None) -> list:
    return [p for p in plan.access_points if p.slice == slice_name and user in p.users
            and (kind is None or p.type == kind) and (node is None or p.node == node)]


def _context(topo: Topology) -> tuple[PlanContext, object]:
    runtime = TopologyState(topo.name).runtime
    state = ControllerState(credentials=gather(topo, runtime, create=False))
    return PlanContext(topo, runtime, state), store(runtime)


def choose_point(plan, slice_name: str, user: str, kind: str | None, node: str | None):
    """The one access point of `user` that `kind` and `node` (None: any) leave; without a
    choice to make, no option is needed: one type needs no --type, one node no --node."""
    matches = _points(plan, slice_name, user, kind, node)
    if not matches:
        raise VispdError(f"user '{user}' has no {kind or 'remote'} access point in slice '{slice_name}'"
                         + (f" on {node}" if node else ""))
    if len(matches) == 1:
        return matches[0]
    types = sorted({p.type for p in matches})
    if len(types) > 1:
        listed = "; ".join(f"{t} (on {', '.join(p.node for p in matches if p.type == t)})" for t in types)
        raise VispdError(f"'{user}' has several access types in slice '{slice_name}': {listed}; "
                         "choose one with --type")
    raise VispdError(f"'{user}' has {types[0]} access on several nodes ({', '.join(p.node for p in matches)}): "
                     "choose one with --node")


def profile(topo: Topology, plan, slice_name: str, user: str, kind: str | None, node: str | None) -> str:
    """The client configuration of `user`: an .ovpn with inline certificates, a wg-quick
    file, or PPTP's server, user and password. An access point behind the machine's public
    interface is dialled at `public: address`, else at the interface's address now."""
    point = choose_point(plan, slice_name, user, kind, node)
    if point.public_interface and point.dial is None:
        address = interface_address(point.public_interface)
        if address is None:
            raise VispdError(f"public interface {point.public_interface} has no IPv4 address on this machine: "
                             "set `public: address:` to the address clients dial")
        point = dataclasses.replace(point, dial=address)
    ctx, credentials = _context(topo)
    return ACCESS_TYPES[point.type].profile(server_context(ctx, point), user, credentials)


def revoke(topo: Topology, plan, slice_name: str, user: str) -> list[str]:
    """Take `user`'s access away in the slice, at every access point whose type can."""
    points = [p for p in _points(plan, slice_name, user, None, None) if ACCESS_TYPES[p.type].REVOCABLE]
    if not points:
        raise VispdError(f"user '{user}' has no revocable (OpenVPN, WireGuard) access in slice '{slice_name}'")
    ctx, credentials = _context(topo)
    said: list[str] = []
    for kind in sorted({p.type for p in points}):
        contexts = [server_context(ctx, p) for p in points if p.type == kind]
        said += ACCESS_TYPES[kind].revoke(contexts, user, credentials, control)
    return said + _reload_servers(topo, plan)


def _reload_servers(topo: Topology, before) -> list[str]:
    """Running servers whose planned configuration the revocation changed (a WireGuard
    access point's peers) get it now, through their own update recipe (a reload where they
    reload), so the machine matches the plan again without waiting for the next `up`."""
    old = before.by_key()
    changed = [r for r in topology_plan(topo).resources
               if isinstance(r, Daemon) and r.key in old and old[r.key] != r]
    if not changed:
        return []
    backend, state = kernel_backend(topo.name)
    try:
        with state.locked():
            running = {d.name for d in backend.host.daemons_running()}
            for daemon in changed:
                if daemon.name in running:
                    daemon.update(backend.host, old[daemon.key])
    finally:
        backend.close()
    return [f"{d.node}: {d.name} has the new configuration" for d in changed if d.name in running]
