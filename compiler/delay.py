"""Link delay, jitter and loss in the plan (pure): what realises each substrate link's
declared `delay`, `jitter` and `loss` on a machine, by the mechanism the runtime names
(`Runtime.delay_mechanism`, decided by the application before planning: dataplane.delaycaps).

* **netem** (kernels that have it): no process. On each end device of a delayed link (the
  sending node's `to-PEER`), every slice's HTB class gets a netem leaf (`ShapingClass.netem`:
  the declared one-way delay, jitter and loss, its queue sized to twice the bandwidth-delay
  product), and the default class the same (compiler.resources.shaping renders it). HTB
  shapes, netem then delays: a link is shaped first and delayed after.
* **delayline** (no netem, e.g. this project's test machines): packets are held where they
  *arrive*, in the receiving sliver (node namespaces see slice frames only at L2, through
  macvlan's rx handler, and nftables' netdev hook has no queue). For link X–Y, the packets
  X sends to Y are queued on arrival on sliver Y's `v-X` (NFQUEUE, direction "in"), one
  queue per (receiving sliver, peer): the queue number is X's position among Y's delayed
  peers by name, so it is unique in each sliver namespace. Node Y runs one delay process
  (`delay-Y`, `python -m dataplane.delayline --config RUN_DIR/delay-Y.json`) for every
  delayed link arriving in its slivers; it installs and removes its own iptables chains
  (comment `vispd-delay TOPO/Y`), re-reads its configuration on SIGHUP without a gap, and
  listens on `SOCK_DIR/delay-Y.sock` while its queues are bound and its rules installed, so
  `up` waits until the links are delayed and `status`/`check` see a process that is not.
  HTB still shapes on the sender's node, so here too a link is shaped, then delayed. The
  daemon belongs to node Y's part of the plan, in the last phase: it starts after Y's
  slivers and their macvlans exist.
* **None** (neither, or the machine was not asked because nothing declares a delay):
  nothing is planned. `vispd up` refuses a topology that declares a delay on such a
  machine before planning (vispd.engine); `vispd plan` shows the links as not realised.

The configuration file is rendered here, as every daemon's is; `dataplane.delayconfig`
parses it (tests/unit/test_delay_plan.py holds the two to one format).
"""
from __future__ import annotations

import json
import signal
from dataclasses import dataclass, replace

from model.linkdelay import DeclaredDelay, declared, places
from model.naming import node_ns, sliver_ns, virtual_ifname
from model.schema import Link, Topology

from .context import PlanContext, PlanningError, PlanParts
from .links import LINK_KINDS
from .resources import Daemon
from .resources.shaping import Netem, netem_limit

MECHANISMS = ("netem", "delayline")
SHOWN = {"netem": "netem", "delayline": "delay line", None: "none"}  # how plan and status name them
DELAY_LINE_MODULE = "dataplane.delayline"


@dataclass(frozen=True)
class QueueAssignment:
    """Where the delay line holds what `sender` sends to `receiver` in one slice."""

    receiver: str  # the node whose sliver receives (and whose delay process serves)
    sender: str
    slice: str
    netns: str  # the receiving sliver
    device: str  # its interface toward the sender (v-SENDER)
    queue: int  # unique in `netns`
    delay: DeclaredDelay


@dataclass(frozen=True)
class LinkRealisation:
    """What `plan` and `status` show for one delayed link."""

    between: tuple[str, str]
    declared: DeclaredDelay
    mechanism: str | None  # "netem" | "delayline" | None
    processes: tuple[str, ...] = ()  # the delay processes of its two ends (delayline)
    queues: tuple[QueueAssignment, ...] = ()

    @property
    def shown_mechanism(self) -> str:
        return SHOWN[self.mechanism]


def process_name(node: str) -> str:
    return f"delay-{node}"


def delayed_links(topo: Topology) -> list[tuple[Link, DeclaredDelay]]:
    """The links that declare a delay, jitter or loss above zero, with their values."""
    where = places(topo.nodes)
    found = ((link, declared(link, where)) for link in topo.links)
    return [(link, value) for link, value in found if value.any]


def queue_assignments(topo: Topology, delayed: list[tuple[Link, DeclaredDelay]]) -> list[QueueAssignment]:
    """Every (receiving sliver, peer) the delay line holds, numbered per receiving node."""
    by_key = {link.key: value for link, value in delayed}
    peers: dict[str, list[str]] = {}
    for a, b in by_key:
        peers.setdefault(a, []).append(b)
        peers.setdefault(b, []).append(a)
    position = {(y, x): q for y, xs in peers.items() for q, x in enumerate(sorted(xs))}
    sites = {n.name: n.site for n in topo.nodes}
    found = []
    for sl in topo.slices:
        for link in topo.slice_links(sl):
            if link.key not in by_key:
                continue
            a, b = link.key
            for sender, receiver in ((a, b), (b, a)):
                found.append(QueueAssignment(
                    receiver=receiver, sender=sender, slice=sl.name, netns=sliver_ns(topo.name, receiver, sl.name),
                    device=virtual_ifname(sender, sites[sender]), queue=position[(receiver, sender)],
                    delay=by_key[link.key]))
    return sorted(found, key=lambda q: (q.receiver, q.netns, q.queue))


def realisations(topo: Topology, mechanism: str | None) -> list[LinkRealisation]:
    """How each delayed link is realised with `mechanism` (what the plan holds for it)."""
    delayed = delayed_links(topo)
    by_link: dict[tuple[str, str], list[QueueAssignment]] = {}
    for q in queue_assignments(topo, delayed) if mechanism == "delayline" else []:
        by_link.setdefault(tuple(sorted((q.sender, q.receiver))), []).append(q)
    shown = []
    for link, value in delayed:
        mine = tuple(by_link.get(link.key, ()))
        processes = tuple(sorted({process_name(q.receiver) for q in mine}))
        shown.append(LinkRealisation(link.key, value, mechanism, processes, mine))
    return shown


# --- planning ------------------------------------------------------------------------------

def plan_delays(ctx: PlanContext, parts: PlanParts) -> None:
    """Add what realises the declared delays with the runtime's mechanism (after the
    slivers: the netem leaves go on their HTB classes)."""
    mechanism = ctx.runtime.delay_mechanism
    delayed = delayed_links(ctx.topo)
    if not delayed or mechanism is None:
        return
    if mechanism == "netem":
        _plan_netem(ctx, parts, delayed)
    elif mechanism == "delayline":
        _plan_delay_lines(ctx, parts, delayed)
    else:
        raise PlanningError(f"unknown delay mechanism {mechanism!r} (expected one of {', '.join(MECHANISMS)})")


def _plan_netem(ctx: PlanContext, parts: PlanParts, delayed: list[tuple[Link, DeclaredDelay]]) -> None:
    for link, value in delayed:
        for _, ns, device in LINK_KINDS[link.kind].end_devices(link, ctx):
            classes = parts.classes.get((ns, device))
            if not classes:
                continue  # no slice uses the link
            parts.classes[(ns, device)] = [
                replace(c, netem=Netem(value.delay_us, value.jitter_us, value.loss,
                                       netem_limit(c.ceil, value.delay_us, value.jitter_us)))
                for c in classes]


def _plan_delay_lines(ctx: PlanContext, parts: PlanParts, delayed: list[tuple[Link, DeclaredDelay]]) -> None:
    by_receiver: dict[str, list[QueueAssignment]] = {}
    for assignment in queue_assignments(ctx.topo, delayed):
        by_receiver.setdefault(assignment.receiver, []).append(assignment)
    for node, assignments in sorted(by_receiver.items()):
        parts.add(delay_daemon(ctx, node, assignments))


def line_config(owner: str, assignments: list[QueueAssignment], ready_socket: str) -> str:
    """The delay process's configuration file (the JSON dataplane.delayconfig parses);
    its timing knobs (early release, read coalescing, real-time policy) keep their defaults.
    It listens on `ready_socket` while its queues are bound and its rules installed."""
    links = [{"queues": [q.queue], "delay": f"{q.delay.delay_us}us", "jitter": f"{q.delay.jitter_us}us",
              "loss": f"{q.delay.loss * 100:.10g}%", "netns": q.netns, "device": q.device, "direction": "in"}
             for q in assignments]
    rows = ",\n".join(f" {json.dumps(link)}" for link in links)  # one line per queue
    return (f'{{"owner": {json.dumps(owner)}, "ready-socket": {json.dumps(ready_socket)}, '
            f'"links": [\n{rows}\n]}}\n')


def delay_daemon(ctx: PlanContext, node: str, assignments: list[QueueAssignment]) -> Daemon:
    """Node `node`'s delay process, serving the queues of its slivers."""
    runtime, name = ctx.runtime, process_name(node)
    leaf, ready = f"{name}.json", runtime.socket(f"{name}.sock")
    return Daemon(node=node, ns=node_ns(ctx.name, node), name=name,
                  argv=runtime.module_command(DELAY_LINE_MODULE, "--config", runtime.run_file(leaf)),
                  env=runtime.module_env(), reload_signal=signal.SIGHUP, listens=(("unix", ready, 0),),
                  files=((leaf, line_config(f"{ctx.name}/{node}", assignments, ready)),))
