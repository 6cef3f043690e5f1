"""`vispd status`: what is up for a topology, per node and sliver, and whether it matches
the plan (the diff between the kernel and the plan is empty).

I/O: observes the kernel (changes nothing).
"""
from __future__ import annotations

from collections import Counter

from compiler.resources import Adopted
from dataplane import netns
from dataplane.borrow import Ledger
from model.schema import Topology
from model.units import format_bandwidth

from .daemon_health import daemon_health
from .engine import plan_changes
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
    return {
        "topology": topo.name,
        "source": topo.source.file if topo.source else None,
        "in_sync": not outcome.steps and not any(d["problem"] for d in daemons),
        "daemons": daemons,
        "pending": dict(pending),
        "unowned_namespaces": outcome.unowned,
        "nodes": nodes,
        "links": [{"between": list(lk.key), "bandwidth": format_bandwidth(lk.bandwidth), "cost": lk.cost}
                  for lk in topo.links],
        "slivers": slivers,
        "borrowed": borrowed,  # the machine's interfaces the plan borrows, and whether vispd holds them
    }


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
    if status["unowned_namespaces"]:
        lines.append("namespaces with vispd names but no vispd marker (left alone): "
                     + ", ".join(status["unowned_namespaces"]))
    return "\n".join(lines)
