"""`vispd exec`: run a program inside a slice's sliver as the slice's unprivileged user.

Uses util-linux `nsenter` (enter the sliver's network namespace) and `setpriv` (drop to the
slice's uid/gid, no supplementary groups, no inheritable capabilities, no_new_privs: a
non-root uid holds no capabilities, and no_new_privs keeps file capabilities such as
ping's cap_net_raw from being granted, so ping falls back to ICMP datagram sockets), then execs
the program in place of vispd. `--root` skips setpriv: operators only.

In a `routing: own` slice's sliver the program runs as the slice's own root there: uid 0
of the user namespace that owns the sliver (the slice's uid outside), with CAP_NET_ADMIN,
CAP_NET_RAW, CAP_NET_BIND_SERVICE and CAP_NET_BROADCAST over that sliver alone
(dataplane.userns).

I/O: replaces the process with the command in the sliver.
"""
from __future__ import annotations

import os

from dataplane import netns, userns

from model.errors import VispdError
from model.schema import Topology
from compiler.planner import compile_plan


def sliver_command(ns: str, uid: int, gid: int, command: list[str], as_root: bool = False) -> list[str]:
    """The argv that runs `command` in namespace `ns` as uid/gid with no capabilities."""
    argv = ["nsenter", f"--net={netns.path(ns)}", "--"]
    if not as_root:
        argv += ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                 "--inh-caps=-all", "--no-new-privs", "--"]
    return argv + list(command)


def exec_in_sliver(topo: Topology, slice_name: str, node: str, command: list[str], as_root: bool) -> None:
    plan = compile_plan(topo)
    try:
        info = plan.sliver(slice_name, node)
    except KeyError:
        raise VispdError(f"slice '{slice_name}' has no sliver on node '{node}'") from None
    if not netns.exists(info.ns):
        raise VispdError(f"sliver {info.ns} does not exist: run `vispd up {topo.name}` first")
    if plan.routing.get(slice_name) == "own" and not as_root:
        if userns.root_ids(info.ns) != (info.uid, info.gid):
            raise VispdError(f"sliver {info.ns} is not the slice's own (made before routing: own?): "
                             f"run `vispd up {topo.name}` first")
        userns.exec_inside(info.ns, command)
    argv = sliver_command(info.ns, info.uid, info.gid, command, as_root)
    os.execvp(argv[0], argv)
