"""Orchestration of one command: load → compile → observe → diff → apply.

The engine connects the pure core (loader, planner, diff) to a backend; the CLI only
parses arguments and prints. `resolve` turns the user's TOPOLOGY argument (a file, or
the name of a topology that is up) into a loaded topology.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Callable

from .diff import Step, diff, schedule
from .errors import UnknownTopology, VispdError
from .loader import load_topology
from .model import Topology
from .plan import Plan
from .planner import DaemonPaths, compile_plan
from .plan import TunTap
from .state import TopologyState, rewrite_journal


def resolve(argument: str) -> tuple[Topology, str]:
    """(topology, source path) for a file path or the name of a topology that is up."""
    if os.path.exists(argument) or argument.endswith((".yaml", ".yml")):
        return load_topology(argument), argument
    source = TopologyState(argument).source()
    if source is None:
        raise UnknownTopology(f"'{argument}' is neither a topology file nor the name of a topology that is up")
    return load_topology(source), source


def warnings_for(topo: Topology) -> list[str]:
    """What `up` says about choices that work but deserve a second thought."""
    return [f"PPTP access for slice '{a.slice}' is unencrypted legacy (MS-CHAPv2, no MPPE): "
            "anyone on the path reads its traffic" for a in topo.access if a.type == "pptp"]


@dataclass
class Outcome:
    plan: Plan
    steps: list[Step] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _backend(topology: str):
    from dataplane.kernel import KernelBackend  # imported late: the pure commands need no pyroute2

    state = TopologyState(topology)
    backend = KernelBackend(topology, journal=state.journal, known_namespaces=state.journaled(),
                            run_dir=os.path.join(state.dir, "run"))
    return backend, state


def topology_plan(topo: Topology, create_credentials: bool = False) -> Plan:
    """The plan of `topo`, with daemon files and credentials under its state directory
    (credentials are made only when `create_credentials`: `up` does, the others read)."""
    from .credentials import gather

    state_dir = TopologyState(topo.name).dir
    credentials = gather(topo, state_dir, create_credentials)
    return compile_plan(topo, DaemonPaths.for_topology(state_dir, topo.name), credentials)


def plan_changes(topo: Topology) -> Outcome:
    """What `up` would do now (observes the kernel, changes nothing)."""
    plan = topology_plan(topo)
    if os.geteuid() != 0:
        return Outcome(plan, diff([], plan.resources))
    backend, _ = _backend(topo.name)
    try:
        observed = backend.observe(plan.by_key())
        return Outcome(plan, diff(observed, plan.resources), list(backend.unowned))
    finally:
        backend.close()


def up(topo: Topology, source: str, progress: Callable[[Step], None] | None = None) -> Outcome:
    plan = topology_plan(topo, create_credentials=True)
    backend, state = _backend(topo.name)
    paths = DaemonPaths.for_topology(state.dir, topo.name)
    os.makedirs(os.path.join(paths.sock_dir, "sockets"), exist_ok=True)
    with state.locked():
        state.set_source(source)
        try:
            observed = backend.observe(plan.by_key())
            _refuse_unowned(backend.unowned, plan)
            steps = diff(observed, plan.resources)
            if any(isinstance(r, TunTap) for r in plan.resources):
                from dataplane.tundev import grant_access

                grant_access()
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            rewrite_journal(state, backend.namespaces())
        finally:
            backend.close()
    return Outcome(plan, steps, list(backend.unowned), warnings_for(topo))


def _refuse_unowned(unowned: list[str], plan: Plan) -> None:
    clash = sorted(set(unowned) & set(plan.namespaces()))
    if clash:
        raise VispdError(
            "these namespaces exist but were not created by vispd; remove or rename them first: "
            + ", ".join(clash))


def down(name: str, progress: Callable[[Step], None] | None = None) -> Outcome:
    """Remove everything vispd owns for topology `name`, and nothing else."""
    backend, state = _backend(name)
    with state.locked():
        try:
            observed = backend.observe({})
            steps = diff(observed, [])
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            remaining = backend.namespaces()
        finally:
            backend.close()
    if remaining:
        raise VispdError(f"could not remove: {', '.join(remaining)}")
    state.forget()
    shutil.rmtree(DaemonPaths.for_topology(state.dir, name).sock_dir, ignore_errors=True)
    from dataplane.tundev import restore_access

    restore_access()
    return Outcome(Plan(name), steps, list(backend.unowned))
