"""`vispd check`'s BGP phase: every BGP session vispd runs must be Established (a session
that is not is a failure, with the state and the reason its speaker gives), every
provider's BFD session must be up while its BGP session is (else a silent failure would
go unseen for the hold time), and every daemon of the plan must run and serve. Sessions
are given until `converge` seconds after the check starts, as right after `up` they may
still be opening.

I/O: reads the speakers' status files and the daemons' processes and sockets.
"""
from __future__ import annotations

import time

from compiler.plan import Plan

from .bgpstatus import bfd_cell, is_up, speaker_statuses
from .check_report import Report, SessionCheck
from .daemon_health import daemon_health


def bgp_phase(plan: Plan, report: Report, converge: float) -> None:
    deadline = time.monotonic() + converge
    while True:
        statuses = speaker_statuses(plan)
        checks = [judge_speaker(status) for status in statuses]
        bfd = [problem for status in statuses for problem in bfd_problems(status)]
        if (all(c.ok for c in checks) and not bfd) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    report.sessions = checks
    report.errors += bfd
    report.errors += [f"daemon {h['name']} in {h['namespace'] or 'the host namespace'}: {h['problem']}"
                      for h in daemon_health(plan) if h["problem"]]


def judge_speaker(status: dict) -> SessionCheck:
    neighbors = status.get("neighbors", {})
    items = list(neighbors.values()) if isinstance(neighbors, dict) else list(neighbors)
    down = [{"neighbor": n.get("name", "?"), "state": n.get("state", "?"),
             "reason": n.get("last_down_reason") or status.get("error") or "not Established yet"}
            for n in items if not is_up(n)]
    if not items:
        down = [{"neighbor": "-", "state": "unknown", "reason": status.get("error", "no sessions reported")}]
    return SessionCheck(status.get("slice", "?"), status.get("node", "?"), len(items), down)


def bfd_problems(status: dict) -> list[str]:
    """A border's providers whose BGP session is Established while their BFD is not up
    (down, init, unknown: bfdd unreachable); a provider without BFD (`off`) is none."""
    if status.get("role") != "border":
        return []
    problems = []
    for n in (status.get("neighbors") or {}).values():
        bfd = n.get("bfd")
        if n.get("kind") != "provider" or not isinstance(bfd, dict) or not is_up(n) \
                or bfd.get("state") in ("up", "off"):
            continue
        why = bfd.get("problem") or bfd.get("diagnostic") or "it never came up: does the provider run BFD?"
        problems.append(f"border {status.get('node', '?')}: provider {n.get('name', '?')}: BGP Established but "
                        f"BFD {bfd_cell(n)} ({why}); a silent failure would go unseen for the hold time "
                        "(a provider without BFD takes `bfd: false`)")
    return problems
