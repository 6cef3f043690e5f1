"""`vispd check`'s BGP phase: every BGP session vispd runs must be Established (a session
that is not is a failure, with the state and the reason its speaker gives), and every
daemon of the plan must run and serve. Sessions are given until `converge` seconds after
the check starts, as right after `up` they may still be opening.

I/O: reads the speakers' status files and the daemons' processes and sockets.
"""
from __future__ import annotations

import time

from compiler.plan import Plan

from .bgpstatus import is_up, speaker_statuses
from .check_report import Report, SessionCheck
from .daemon_health import daemon_health


def bgp_phase(plan: Plan, report: Report, converge: float) -> None:
    deadline = time.monotonic() + converge
    while True:
        checks = [judge_speaker(status) for status in speaker_statuses(plan)]
        if all(c.ok for c in checks) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    report.sessions = checks
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
