"""`vispd status`: what is up for a topology, per node and sliver, and whether it matches
the plan (the diff between the kernel and the plan is empty); per delayed link, its delay,
how it is realised and, with the delay line, whether its processes run and serve and what
their queues hold and dropped (the kernel's counters).

I/O: observes the kernel (changes nothing).
"""
from __future__ import annotations

from collections import Counter

from compiler.delay import LinkRealisation, delayed_links, realisations
from compiler.resources import Adopted
from dataplane import netns
from dataplane.borrow import Ledger
from dataplane.delaystatus import queue_stats
from model.schema import Topology
from model.units import format_bandwidth

from .daemon_health import daemon_health
from .engine import delay_mechanism, plan_changes
from .state import TopologyState


def collect_status(topo: Topology) -> dict:
    outcome = plan_changes(topo)
    plan = outcome.plan
    pending = Counter(s.action for s in outcome.steps)
    slivers = []
    for info in plan.slivers:
        slivers.append({
            "slice": info.slice, "node": info.node, "namespace": info.ns,
            "present": netns.exists(info.ns), "loopback": info.loopback, "uid": info.uid,
            "interfaces": [{"name": n, "address": a, "mac": m} for n, a, m in info.interfaces],
            "pseudo_devices": [{"name": n, "type": t, "subnet": s} for n, t, s in info.pseudo_devices],
        })
    nodes = [{"node": n.name, "namespace": f"vispd.{topo.name}.{n.name}",
              "present": netns.exists(f"vispd.{topo.name}.{n.name}")} for n in topo.nodes]
    daemons = daemon_health(plan)
    ledger = Ledger(TopologyState(topo.name).borrow_dir())
    borrowed = [{"interface": r.original, "namespace": r.ns, "name": r.ifname,
                 "held": ledger.device(r.ns, r.ifname) is not None}
                for r in plan.resources if isinstance(r, Adopted)]
    delays = link_delay_status(topo, daemons)
    return {
        "topology": topo.name,
        "source": topo.source.file if topo.source else None,
        "in_sync": (not outcome.steps and not any(d["problem"] for d in daemons)
                    and not any(d["problem"] for d in delays)),
        "daemons": daemons,
        "pending": dict(pending),
        "unowned_namespaces": outcome.unowned,
        "nodes": nodes,
        "links": [{"between": list(lk.key), "bandwidth": format_bandwidth(lk.bandwidth), "cost": lk.cost}
                  for lk in topo.links],
        "slivers": slivers,
        "borrowed": borrowed,  # the machine's interfaces the plan borrows, and whether vispd holds them
        "link_delays": delays,
    }


def link_delay_status(topo: Topology, daemons: list[dict] | None) -> list[dict]:
    """Per delayed link: what it declares, the mechanism, and (given the daemons' health, as
    `status` has it) its delay processes' health and the kernel's counters of their queues;
    with `daemons` None (`plan`), nothing is observed."""
    mechanism = delay_mechanism() if delayed_links(topo) else None
    health = {d["name"]: d for d in daemons or []}
    counters: dict[str, dict] = {}
    found = []
    for link in realisations(topo, mechanism):
        queues = [] if daemons is None else [
            _queue_status(q, counters.setdefault(q.netns, queue_stats(q.netns)).get(q.queue)) for q in link.queues]
        processes = [{"name": name, "pid": health.get(name, {}).get("pid"),
                      "problem": "" if daemons is None else health.get(name, {}).get("problem", "not planned")}
                     for name in link.processes]
        found.append({"between": list(link.between), "delay": link.declared.describe(),
                      "delay_us": link.declared.delay_us, "jitter_us": link.declared.jitter_us,
                      "loss": link.declared.loss, "geo": link.declared.geo, "mechanism": link.shown_mechanism,
                      "processes": processes, "queues": queues, "problem": _link_problem(link, processes, queues)})
    return found


def _queue_status(assignment, counters: dict | None) -> dict:
    return {"from": assignment.sender, "to": assignment.receiver, "slice": assignment.slice,
            "namespace": assignment.netns, "device": assignment.device, "queue": assignment.queue,
            "bound": counters is not None, "held": counters["held"] if counters else 0,
            "queue_full_drops": counters["queue_dropped"] if counters else 0,
            "reader_full_drops": counters["user_dropped"] if counters else 0}


def _link_problem(link: LinkRealisation, processes: list[dict], queues: list[dict]) -> str:
    if link.mechanism is None:
        return "not realised: this machine has neither netem nor the delay line (`up` refuses it)"
    failing = [f"{p['name']} {p['problem']}" for p in processes if p["problem"]]
    unbound = [f"{q['namespace']} queue {q['queue']}" for q in queues if not q["bound"]]
    if unbound:
        failing.append("no reader on " + ", ".join(unbound[:3]) + (" ..." if len(unbound) > 3 else ""))
    return "; ".join(failing)


def render_link_delays(delays: list[dict], with_state: bool) -> list[str]:
    """One line per delayed link (plan: its delay and mechanism; status: and their state)."""
    lines = []
    width = max((len("-".join(d["between"])) for d in delays), default=0)
    for d in delays:
        line = f"  {'-'.join(d['between']):<{width}}  {d['delay']}" + (
            f" by {d['mechanism']}" if d["mechanism"] != "none" else "")
        if d["mechanism"] == "delay line":
            line += f" ({', '.join(p['name'] for p in d['processes'])})"
        if with_state and d["queues"]:
            bound = sum(q["bound"] for q in d["queues"])
            line += (f": {bound}/{len(d['queues'])} queues bound, {sum(q['held'] for q in d['queues'])} held, "
                     f"{sum(q['queue_full_drops'] for q in d['queues'])} dropped queue full, "
                     f"{sum(q['reader_full_drops'] for q in d['queues'])} reader full")
        if d["problem"] and (with_state or d["mechanism"] == "none"):
            line += f": {d['problem']}"
        lines.append(line)
    return lines


def render_status(status: dict) -> str:
    lines = [f"topology {status['topology']} ({status['source']}): "
             + ("in sync with its plan" if status["in_sync"] else
                "differs from its plan: " + ", ".join(f"{v} to {k}" for k, v in status["pending"].items())
                + " (run `vispd up`)")]
    up_nodes = sum(n["present"] for n in status["nodes"])
    lines.append(f"nodes: {up_nodes}/{len(status['nodes'])} up, links: {len(status['links'])}")
    by_slice: dict[str, list[dict]] = {}
    for s in status["slivers"]:
        by_slice.setdefault(s["slice"], []).append(s)
    for name, slivers in by_slice.items():
        present = sum(s["present"] for s in slivers)
        lines.append(f"slice {name}: {present}/{len(slivers)} slivers up")
        for s in slivers:
            devs = "".join(f" {d['type']}:{d['name']}={d['subnet']}" for d in s["pseudo_devices"])
            lines.append(f"  {s['node']:<14} {'up ' if s['present'] else 'DOWN'} lo {s['loopback']:<15} "
                         f"{len(s['interfaces'])} links{devs}")
    for b in status.get("borrowed", []):
        lines.append(f"interface {b['interface']}: {'borrowed' if b['held'] else 'not borrowed yet'} "
                     f"as {b['namespace']}/{b['name']}")
    healthy = [d for d in status["daemons"] if not d["problem"]]
    lines.append(f"daemons: {len(healthy)}/{len(status['daemons'])} running and serving")
    for d in status["daemons"]:
        if d["problem"]:
            lines.append(f"  {d['name']:<24} {d['problem']} (namespace {d['namespace'] or 'of the host'})")
    if status.get("link_delays"):
        lines.append(f"link delays: {len(status['link_delays'])} links")
        lines += render_link_delays(status["link_delays"], with_state=True)
    if status["unowned_namespaces"]:
        lines.append("namespaces with vispd names but no vispd marker (left alone): "
                     + ", ".join(status["unowned_namespaces"]))
    return "\n".join(lines)
