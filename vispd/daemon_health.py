"""Whether each daemon of a plan runs and serves: its recorded process is alive in the
namespace it was started in, and holds every listening place it declares (`Daemon.listens`).
`status` lists the ones that do not, `check` fails on them, and `up` restarts them.

I/O: reads PID files and /proc.
"""
from __future__ import annotations

from compiler.plan import Plan
from compiler.resources import Daemon
from dataplane.host import KernelHost

from .state import TopologyState


def daemon_health(plan: Plan) -> list[dict]:
    state = TopologyState(plan.topology)
    host = KernelHost(plan.topology, run_dir=state.runtime.run_dir)
    try:
        return [_health(host, d) for d in plan.resources if isinstance(d, Daemon)]
    finally:
        host.close()


def _health(host: KernelHost, daemon: Daemon) -> dict:
    running = host.daemons.running(daemon.name)
    missing = host.daemon_missing(daemon.name, daemon.ns, daemon.listens) if running else list(daemon.listens)
    if running is None:
        problem = "not running"
    elif missing:
        problem = "runs but does not serve on " + ", ".join(_place(m) for m in missing)
    else:
        problem = ""
    return {"name": daemon.name, "namespace": daemon.ns, "pid": running.pid if running else None,
            "running": running is not None, "serving": running is not None and not missing,
            "problem": problem}


def _place(listen) -> str:
    proto, address, port = listen
    return address if proto == "unix" else f"{proto} {address}:{port}"
