"""The `vispd` command line: argument parsing and printing only.

Exit codes: 0 success, 1 a check failed or the kernel refused, 2 bad input (topology errors
as FILE:LINE:COL lines, unknown topology, bad usage).

I/O through the application's modules.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Iterable, Iterator

from compiler.access_types import ACCESS_TYPES
from compiler.diff import Step, gc_paused
from compiler.planner import PlanningError
from model.errors import BadRequest, TopologyError, UnknownTopology, VispdError
from model.yamlsrc import load_marked

from . import access_cli
from .bgpstatus import render_bgp_status, render_routes, sliver_routes, speaker_statuses
from .check import run_checks
from .engine import down, plan_changes, resolve, topology_plan, up
from .execute import exec_in_sliver
from .labnet import mininet_available
from .linkstate import set_link
from .status import collect_status, link_delay_status, render_link_delays, render_status

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# `vispd plan` lists every step up to this many; beyond, nobody reads the list (a 1,000-node
# topology's first plan is ~350,000 steps): a table by kind, and --full for the list.
PLAN_LIST_LIMIT = 1000


def _summary(steps: list[Step]) -> str:
    counts = Counter(s.action for s in steps)
    return ", ".join(f"{counts[a]} to {a}" for a in ("create", "update", "delete") if counts[a])


def cmd_validate(args) -> int:
    topo, source = resolve(args.topology)
    print(f"{source}: ok: {len(topo.nodes)} nodes, {len(topo.links)} links, {len(topo.slices)} slices")
    return EXIT_OK


def cmd_plan(args) -> int:
    topo, _ = resolve(args.topology)
    with gc_paused():  # a 1,000-node plan is ~350,000 resources and as many steps, all acyclic
        steps = plan_changes(topo).steps
        if os.geteuid() != 0:
            print("(not root: planned against an empty machine)", file=sys.stderr)
        if args.json:
            _write_lines(_json_lines(steps))
            return EXIT_OK
        delays = link_delay_status(topo, None)
        if delays:
            print(f"link delays ({len(delays)} links, one way):")
            _write_lines(render_link_delays(delays, with_state=False))
        if args.full or len(steps) <= PLAN_LIST_LIMIT:
            _write_lines(step.describe() for step in steps)
        else:
            _write_lines(_kind_table(steps))
        print(_summary(steps) or "no changes")
        return EXIT_OK


def _write_lines(lines: Iterable[str], chunk: int = 8192) -> None:
    """Write lines as they come, a few thousand per write: a 350,000-step plan is never one string."""
    out, pending = sys.stdout, []
    for line in lines:
        pending.append(line)
        if len(pending) == chunk:
            out.write("\n".join(pending) + "\n")
            pending.clear()
    if pending:
        out.write("\n".join(pending) + "\n")


def _json_lines(steps: list[Step]) -> Iterator[str]:
    """`json.dumps([...], indent=1)` of the steps, byte for byte, one step at a time."""
    if not steps:
        yield "[]"
        return
    yield "["
    encoder, last = json.JSONEncoder(indent=1, default=str), len(steps) - 1
    for i, step in enumerate(steps):
        text = encoder.encode({"action": step.action, **step.resource.to_json()})
        yield " " + text.replace("\n", "\n ") + ("," if i < last else "")
    yield "]"


def _kind_table(steps: list[Step]) -> list[str]:
    """What a plan too long to read does, by kind in the order `up` makes them: how many of
    each are created, updated and deleted, in how many namespaces, on how many nodes."""
    counts = Counter((s.resource.PHASE, s.resource.KIND, s.action) for s in steps)
    namespaces = Counter(kind for kind, _ in {(s.resource.KIND, s.resource.ns) for s in steps})
    nodes = {s.resource.node for s in steps}
    kinds = sorted({(phase, kind) for phase, kind, _ in counts})
    lines = [f"{len(steps):,} steps, by kind (`vispd plan --full` lists every step, --json all of them as JSON):",
             f"  {'kind':<10} {'create':>9} {'update':>9} {'delete':>9} {'namespaces':>11}"]
    for phase, kind in kinds:
        done = [counts[(phase, kind, action)] for action in ("create", "update", "delete")]
        lines.append(f"  {kind:<10} {done[0]:>9,} {done[1]:>9,} {done[2]:>9,} {namespaces[kind]:>11,}")
    lines.append(f"  on {len(nodes - {''}):,} nodes" + (" and the controller" if "" in nodes else ""))
    return lines


def cmd_up(args) -> int:
    topo, source = resolve(args.topology)
    progress = (lambda s: print(s.describe())) if args.verbose else None
    outcome = up(topo, source, progress)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{topo.name}: " + (_summary(outcome.steps) or "no changes"))
    return EXIT_OK


def cmd_down(args) -> int:
    name = args.topology
    if os.path.exists(args.topology):
        try:
            name = resolve(args.topology)[0].name
        except TopologyError:
            data, _ = load_marked(args.topology)
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str):
                raise
    progress = (lambda s: print(s.describe())) if args.verbose else None
    outcome = down(name, progress)
    removed = sum(1 for s in outcome.steps if s.resource.KIND == "netns")
    print(f"{name}: removed {removed} namespaces ({len(outcome.steps)} objects)")
    return EXIT_OK


def cmd_check(args) -> int:
    topo, _ = resolve(args.topology)
    report = run_checks(topology_plan(topo), timeout=args.timeout, converge=args.converge)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_status(args) -> int:
    topo, _ = resolve(args.topology)
    status = collect_status(topo)
    if args.json:
        print(json.dumps(status, indent=1))
    else:
        print(render_status(status))
    return EXIT_OK if status["in_sync"] else EXIT_FAILED


def cmd_exec(args) -> int:
    topo, _ = resolve(args.topology)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise VispdError("give a command after --, e.g. vispd exec abilene plb seattle -- ping -c1 ADDR")
    exec_in_sliver(topo, args.slice, args.node, command, as_root=args.root)
    return EXIT_FAILED  # not reached: exec replaces the process


def cmd_bgp(args) -> int:
    if args.action != "status":
        raise VispdError(f"unknown bgp action '{args.action}' (try: vispd bgp status TOPOLOGY)")
    topo, _ = resolve(args.topology)
    statuses = speaker_statuses(topology_plan(topo))
    print(json.dumps(statuses, indent=1) if args.json else render_bgp_status(statuses))
    return EXIT_OK


def cmd_routes(args) -> int:
    topo, _ = resolve(args.topology)
    try:
        info = topology_plan(topo).sliver(args.slice, args.node)
    except KeyError:
        raise VispdError(f"slice '{args.slice}' has no sliver on node '{args.node}'") from None
    routes = sliver_routes(info.ns)
    print(json.dumps(routes, indent=1) if args.json else render_routes(routes))
    return EXIT_OK


def cmd_access(args) -> int:
    topo, _ = resolve(args.topology)
    plan = topology_plan(topo)
    if args.action == "profile":
        text = access_cli.profile(topo, plan, args.slice, args.user, args.type, args.node)
        if args.output:
            with open(os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                handle.write(text)
            print(f"wrote {args.output}")
        else:
            sys.stdout.write(text)
    else:
        for line in access_cli.revoke(topo, plan, args.slice, args.user):
            print(line)
    return EXIT_OK


def cmd_link(args) -> int:
    topo, _ = resolve(args.topology)
    change = set_link(topo, args.a, args.b, down=args.action == "down")
    a, b = change.link
    if not change.steps:
        print(f"{topo.name}: link {a}-{b} was already {args.action}")
        return EXIT_OK
    took = (change.applied_at - change.changed_at) * 1000
    print(f"{topo.name}: link {a}-{b} {args.action}; {change.routes_changed} routes changed, "
          f"{len(change.steps)} objects, applied {took:.1f} ms after the link changed")
    return EXIT_OK


def cmd_lab(args) -> int:
    why = mininet_available()
    if why:
        raise VispdError(f"vispd lab needs Mininet: {why}")
    from .lab_cli import run_lab  # imported here: Mininet's CLI is only for labs, and heavy

    return run_lab(args.topology, script=args.script)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vispd", description="virtual ISPs on a shared substrate")
    sub = parser.add_subparsers(dest="command_name", required=True)

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("topology", help="topology file, or the name of a topology that is up")
        p.set_defaults(func=func)
        return p

    command("validate", cmd_validate, "check a topology file; print FILE:LINE:COL errors")
    p = command("plan", cmd_plan, "show what up would create, change or remove")
    p.add_argument("--json", action="store_true", help="every step as JSON")
    p.add_argument("--full", action="store_true",
                   help=f"list every step even when there are more than {PLAN_LIST_LIMIT:,} (default: a table by kind)")
    p = command("up", cmd_up, "build or reconcile the vISP on this machine")
    p.add_argument("-v", "--verbose", action="store_true", help="print each step")
    p = command("down", cmd_down, "remove exactly what vispd created for the topology")
    p.add_argument("-v", "--verbose", action="store_true")
    p = command("check", cmd_check, "all-pairs reachability per slice and isolation between slices")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each probe")
    p.add_argument("--converge", type=float, default=30.0,
                   help="seconds to let BGP egress and OSPF slices converge before a failure counts")
    p = command("status", cmd_status, "what is up, per node and sliver")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("bgp", help="BGP egress: `vispd bgp status TOPOLOGY`")
    p.add_argument("action", choices=["status"])
    p.add_argument("topology")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bgp)
    p = sub.add_parser("access", help="remote access: `vispd access profile|revoke TOPOLOGY SLICE USER`")
    p.add_argument("action", choices=["profile", "revoke"])
    p.add_argument("topology")
    p.add_argument("slice")
    p.add_argument("user")
    p.add_argument("--type", choices=[name for name, kind in ACCESS_TYPES.items() if kind.REMOTE],
                   help="which access point, if several")
    p.add_argument("--node", help="which access point, if several")
    p.add_argument("-o", "--output", help="write the profile to this file (mode 0600)")
    p.set_defaults(func=cmd_access)
    p = command("lab", cmd_lab, "build the topology in Mininet and open its CLI (vispd commands included)")
    p.add_argument("--script", metavar="FILE", help="run the CLI commands in FILE instead of prompting")
    p = sub.add_parser("link", help="fail or restore a substrate link: `vispd link down|up TOPOLOGY A B`")
    p.add_argument("action", choices=["down", "up"])
    p.add_argument("topology")
    p.add_argument("a", help="a node at one end")
    p.add_argument("b", help="the node at the other end")
    p.set_defaults(func=cmd_link)
    p = command("routes", cmd_routes, "the routes of a slice's sliver on a node, by origin")
    p.add_argument("slice")
    p.add_argument("node")
    p.add_argument("--json", action="store_true")
    p = command("exec", cmd_exec, "run a command in a slice's sliver, as the slice's user")
    p.add_argument("slice")
    p.add_argument("node")
    p.add_argument("--root", action="store_true", help="operators only: run as root with capabilities")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TopologyError as exc:
        print(exc.render(), file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} error{'s' if count != 1 else ''}; nothing was changed", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (PlanningError, UnknownTopology, BadRequest) as exc:
        print(f"vispd: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except VispdError as exc:
        print(f"vispd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PermissionError as exc:
        print(f"vispd: {exc} (this command needs root)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `vispd routes ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
