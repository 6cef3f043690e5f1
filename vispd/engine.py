"""Orchestration of one command: load → compile → observe → diff → apply.

The engine connects the pure core (loader, planner, diff, schedule) to a backend; the CLI
only parses arguments and prints. `resolve` turns the user's TOPOLOGY argument (a file, or
the name of a topology that is up) into a loaded topology; `topology_plan` compiles it
with this machine's runtime and the topology's recorded state.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field, replace
from typing import Callable

from compiler.access_types import ACCESS_TYPES
from compiler.delay import delayed_links
from compiler.diff import Step, diff
from compiler.loader import load_topology
from compiler.plan import Plan
from compiler.planner import ControllerState, compile_plan
from compiler.resources import Netns, TunTap
from compiler.runtime import Runtime
from compiler.schedule import schedule
from dataplane import delaycaps, tundev
from dataplane.bpf import detect as bpf_detect
from dataplane.kernel import KernelBackend
from model.errors import BadRequest, UnknownTopology, VispdError
from model.schema import SHORT_NAME_PATTERN, Topology

from .credentials import gather
from .state import TopologyState, account_of, rewrite_journal


def resolve(argument: str) -> tuple[Topology, str]:
    """(topology, source path) for a file, or for the name of a topology that is up — a name
    wins over a directory or anything else of that name that is not a file."""
    if os.path.isfile(argument):
        return load_topology(argument), argument
    if re.fullmatch(SHORT_NAME_PATTERN, argument):
        source = TopologyState(argument).source()
        if source is not None:
            return load_topology(source), source
    if os.path.exists(argument) or argument.endswith((".yaml", ".yml")) or os.sep in argument:
        return load_topology(argument), argument  # says why it cannot be read, at FILE:1:1
    raise UnknownTopology(f"'{argument}' is neither a topology file nor the name of a topology that is up")


def warnings_for(topo: Topology) -> list[str]:
    """What `up` says about choices that work but deserve a second thought."""
    return [warning for entry in topo.access for warning in ACCESS_TYPES[entry.type].warnings(entry)]


@dataclass
class Outcome:
    plan: Plan
    steps: list[Step] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def backend_options(state: TopologyState) -> dict:
    """What every backend of a topology needs to know about its state directory."""
    return {"journal": state.journal, "known_namespaces": state.journaled(),
            "run_dir": state.runtime.run_dir, "shells_file": state.lab_shells_file(),
            "borrow_dir": state.borrow_dir()}


def kernel_backend(topology: str) -> tuple[KernelBackend, TopologyState]:
    state = TopologyState(topology)
    return KernelBackend(topology, **backend_options(state)), state


def topology_plan(topo: Topology, create_credentials: bool = False,
                  failed_links: frozenset[tuple[str, str]] | None = None) -> Plan:
    """The plan of `topo` on this machine, with the credentials of its state directory
    (made only when `create_credentials`: `up` does, the others read) and the substrate
    links taken down with `vispd link down` (or `failed_links`) down."""
    state = TopologyState(topo.name)
    runtime = delay_runtime(topo, replace(state.runtime, guard=node_guard()))
    credentials = gather(topo, runtime, create_credentials)
    failed = state.failed_links() if failed_links is None else failed_links
    return compile_plan(topo, runtime, ControllerState(failed_links=failed, credentials=credentials))


def node_guard() -> str:
    """The node's guard on this machine (compiler.runtime.GUARDS): the BPF guard on the
    hook the kernel offers (dataplane.bpf.detect, probed once per process; $VISPD_BPF
    =off|tcx|clsact overrides), else nftables + u32. A misspelt $VISPD_BPF is bad input."""
    try:
        capability = bpf_detect.available()
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return f"bpf-{capability.mode}" if capability.ok else "nft"


def needs_tun_device(plan: Plan) -> bool:
    """Whether slice programs must open /dev/net/tun: to attach to a pseudo-device vispd made
    for them, or (a `routing: own` slice, root in its sliver) to make TUN/TAP devices of their own."""
    return any(isinstance(r, TunTap) or (isinstance(r, Netns) and r.userns) for r in plan.resources)


def delay_runtime(topo: Topology, runtime: Runtime) -> Runtime:
    """`runtime` with this machine's delay mechanism (dataplane.delaycaps: probed once per
    process, or forced by $VISPD_DELAY_MECHANISM), asked only when a link declares a delay,
    jitter or loss: other topologies pay nothing for it."""
    if not delayed_links(topo):
        return runtime
    return replace(runtime, delay_mechanism=delay_mechanism())


def delay_mechanism() -> str | None:
    """"netem", "delayline" or None on this machine; a misspelt $VISPD_DELAY_MECHANISM is bad input."""
    try:
        return delaycaps.mechanism()
    except ValueError as error:
        raise BadRequest(str(error)) from None


def refuse_undelayable(topo: Topology) -> None:
    """A link that declares delay, jitter or loss is never built without them: on a machine
    with neither netem nor the delay line, refuse before anything is made."""
    delayed = delayed_links(topo)
    if not delayed or delay_mechanism() is not None:
        return
    (a, b), more = delayed[0][0].key, len(delayed) - 1
    raise VispdError(delaycaps.refusal(f"{a}-{b}" + (f" (and {more} more)" if more else ""),
                                       delaycaps.probed()))


def plan_changes(topo: Topology) -> Outcome:
    """What `up` would do now (observes the kernel, changes nothing)."""
    plan = topology_plan(topo)
    if os.geteuid() != 0:
        return Outcome(plan, diff([], plan.resources))
    backend, _ = kernel_backend(topo.name)
    try:
        observed = backend.observe(plan.by_key())
        return Outcome(plan, diff(observed, plan.resources), list(backend.unowned))
    finally:
        backend.close()


def up(topo: Topology, source: str, progress: Callable[[Step], None] | None = None,
       make_backend: Callable[[Plan, TopologyState], object] | None = None) -> Outcome:
    """Build or reconcile `topo`; `make_backend(plan, state)` chooses another backend than
    the kernel's own (the Mininet lab does)."""
    refuse_taken_uids(topo)
    refuse_undelayable(topo)
    plan = topology_plan(topo, create_credentials=True)
    if make_backend is None:
        backend, state = kernel_backend(topo.name)
    else:
        state = TopologyState(topo.name)
        backend = make_backend(plan, state)
    os.makedirs(state.runtime.socket("sockets"), exist_ok=True)
    with state.locked():
        state.set_source(source)
        try:
            observed = backend.observe(plan.by_key())
            _refuse_unowned(backend.unowned, plan)
            steps = diff(observed, plan.resources)
            refused = backend.refusals(steps)
            if refused:
                if not observed:  # a first `up`: it leaves no trace (state, socket directory)
                    state.forget()
                    shutil.rmtree(state.runtime.sock_dir, ignore_errors=True)
                raise VispdError("this machine cannot hold the plan (nothing was changed):\n  "
                                 + "\n  ".join(refused))
            if needs_tun_device(plan):
                tundev.grant_access()
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            rewrite_journal(state, backend.namespaces())
        finally:
            if make_backend is None:
                backend.close()
    return Outcome(plan, steps, list(backend.unowned), warnings_for(topo))


def refuse_taken_uids(topo: Topology) -> None:
    """A slice's explicit uid must not be an account (or group) of this machine: the slice's
    programs would act as that account."""
    for sl in topo.slices:
        if sl.uid is None:
            continue
        owner = account_of(sl.uid)
        if owner:
            raise VispdError(f"slice '{sl.name}': uid {sl.uid} is the {owner} on this machine; choose another "
                             "uid, or leave `uid:` out (default uids avoid this machine's accounts)")


def _refuse_unowned(unowned: list[str], plan: Plan) -> None:
    clash = sorted(set(unowned) & set(plan.namespaces()))
    if clash:
        raise VispdError(
            "these namespaces exist but were not created by vispd; remove or rename them first: "
            + ", ".join(clash))


def down(name: str, progress: Callable[[Step], None] | None = None) -> Outcome:
    """Remove everything vispd owns for topology `name`, and nothing else."""
    backend, state = kernel_backend(name)
    with state.locked():
        try:
            observed = backend.observe({})
            steps = diff(observed, [])
            for _, batch in schedule(steps):
                backend.apply(batch, progress)
            backend.host.give_back_leftovers()  # what a killed run left borrowed outside any step
            remaining = backend.namespaces() + backend.host.borrowed()
        finally:
            backend.close()
    if remaining:
        raise VispdError(f"could not remove or give back: {', '.join(remaining)}")
    state.forget()
    shutil.rmtree(state.runtime.sock_dir, ignore_errors=True)
    tundev.restore_access()
    return Outcome(Plan(name), steps, list(backend.unowned))
