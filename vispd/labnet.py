"""The lab's Python API: build a topology in Mininet (or plain namespaces), act, measure,
tear down.

    with Lab("topologies/abilene.yaml") as lab:
        lab.check()                                  # reach, egress, isolation
        print(lab.cmd("plb-seattle", "ping -c1 " + lab.address("plb-new-york")))
        change = lab.link_down("denver", "kansas-city")
        ...

A `Lab` compiles the same plan as `vispd up` and applies it with the same node-level
code; with `backend="mininet"` every namespace is a Mininet host and every veth a Mininet
link (dataplane.mininet_backend), with `backend="netns"` it is exactly `vispd up`. Hosts
have readable names (vispd.naming.host_names): `seattle` (node), `plb-seattle` (sliver),
`mae-east`, `internet`, `public` (lab hosts). `stop()` removes everything: host shells
stopped by PID, then `vispd down`'s removal (never Mininet's `mn -c`).

I/O (root): Mininet hosts and links, through the engine.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from dataplane.mininet_backend import MininetBackend

from . import engine, linkstate
from .bgpstatus import sliver_routes, speaker_statuses
from .check import run_checks
from model.errors import VispdError
from model.schema import Topology
from model.naming import host_names
from compiler.plan import Plan
from .state import TopologyState
from .status import collect_status


def mininet_available() -> str | None:
    """None when Mininet can run here, else why not (for skips and clear errors)."""
    try:
        import mininet.net  # noqa: F401
    except ImportError as exc:
        return f"the mininet Python package is missing ({exc}); run scripts/install.sh"
    if not any(os.access(os.path.join(d, "mnexec"), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
        return "mnexec is missing (apt package mininet); run scripts/install.sh"
    if os.geteuid() != 0:
        return "Mininet needs root"
    return None


@dataclass
class BuildTimes:
    total: float = 0.0
    hosts: float = 0.0  # Mininet: starting host shells
    links: float = 0.0  # Mininet: creating and shaping links
    steps: int = 0


@dataclass
class Lab:
    topology: str | Topology
    backend: str = "mininet"
    plan: Plan | None = None
    topo: Topology | None = None
    source: str = ""
    times: BuildTimes = field(default_factory=BuildTimes)
    _backend: object = None
    _names: dict[str, str] = field(default_factory=dict)  # readable host name -> namespace

    # -- life cycle ---------------------------------------------------------------------
    def __post_init__(self) -> None:
        if isinstance(self.topology, Topology):
            self.topo = self.topology
            self.source = self.topo.source.file if self.topo.source else ""
        else:
            self.topo, self.source = engine.resolve(self.topology)
        if self.backend not in ("mininet", "netns"):
            raise VispdError(f"unknown lab backend '{self.backend}' (mininet or netns)")

    def start(self) -> "Lab":
        if self.backend == "mininet":
            why = mininet_available()
            if why:
                raise VispdError(f"cannot build the lab in Mininet: {why}")
        state = TopologyState(self.topo.name)
        if state.source() is not None:
            raise VispdError(f"topology '{self.topo.name}' is already up; `vispd down {self.topo.name}` first")
        started = time.perf_counter()
        try:
            if self.backend == "mininet":
                outcome = engine.up(self.topo, self.source, make_backend=self._make_mininet_backend)
            else:
                outcome = engine.up(self.topo, self.source)
        except BaseException:
            self.stop()
            raise
        self.times.total = time.perf_counter() - started
        self.times.steps = len(outcome.steps)
        if self._backend is not None:
            self.times.hosts = self._backend.timings["hosts"]
            self.times.links = self._backend.timings["links"]
        self.plan = outcome.plan
        self._names = {name: ns for ns, name in host_names(self.plan.namespaces()).items()}
        return self

    def _make_mininet_backend(self, plan: Plan, state: TopologyState):
        self._backend = MininetBackend(self.topo.name, plan, host_names(plan.namespaces()),
                                       **engine.backend_options(state))
        return self._backend

    def stop(self) -> None:
        """Stop host shells by PID, then remove everything vispd made (as `vispd down`)."""
        if self._backend is not None:
            self._backend.stop_hosts()
            self._backend.close()
            self._backend = None
        if TopologyState(self.topo.name).source() is not None or TopologyState(self.topo.name).journaled():
            engine.down(self.topo.name)

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- hosts --------------------------------------------------------------------------
    @property
    def net(self):
        """The Mininet network (None with the netns backend)."""
        return getattr(self._backend, "net", None)

    def hosts(self) -> dict[str, str]:
        """Readable host name -> namespace, for every host of the lab."""
        return dict(self._names)

    def namespace(self, host: str) -> str:
        try:
            return self._names[host]
        except KeyError:
            raise VispdError(f"no host '{host}' in the lab (hosts: {', '.join(sorted(self._names))})") from None

    def address(self, host: str) -> str:
        """The address that stands for a host: a sliver's loopback, a lab host's first
        address (the Internet host for `internet`)."""
        ns = self.namespace(host)
        for info in self.plan.slivers:
            if info.ns == ns:
                return info.loopback
        if host == "internet" and self.plan.internet_host:
            return self.plan.internet_host
        addresses = [r.cidr.split("/")[0] for r in self.plan.resources
                     if r.KIND == "address" and r.ns == ns and r.ifname != "lo"]
        if addresses:
            return addresses[0]
        raise VispdError(f"host '{host}' has no address of its own")

    def sliver(self, slice_name: str, node: str) -> str:
        """The host name of a slice's sliver on a node."""
        ns = self.plan.sliver(slice_name, node).ns
        return next(name for name, where in self._names.items() if where == ns)

    def popen(self, host: str, argv: list[str] | str, **kwargs) -> subprocess.Popen:
        """Start a process in a host's namespace (as root), not daemonised: stop it by PID."""
        if isinstance(argv, str):
            argv = shlex.split(argv)
        return subprocess.Popen(["nsenter", f"--net=/run/netns/{self.namespace(host)}", "--", *argv], **kwargs)

    def cmd(self, host: str, command: list[str] | str, timeout: float = 60.0) -> str:
        """Run a command in a host's namespace and return its output (stdout and stderr)."""
        proc = self.popen(host, command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return out

    # -- vispd commands -------------------------------------------------------------------
    def check(self, timeout: float = 2.0, converge: float = 30.0):
        return run_checks(engine.topology_plan(self.topo), timeout=timeout, converge=converge)

    def link_down(self, a: str, b: str) -> linkstate.LinkChange:
        return self._link(a, b, True)

    def link_up(self, a: str, b: str) -> linkstate.LinkChange:
        return self._link(a, b, False)

    def _link(self, a: str, b: str, down: bool) -> linkstate.LinkChange:
        change = linkstate.set_link(self.topo, a, b, down, backend=self._backend)
        self.plan = engine.topology_plan(self.topo)
        return change

    def routes(self, slice_name: str, node: str) -> list[dict]:
        return sliver_routes(self.plan.sliver(slice_name, node).ns)

    def status(self) -> dict:
        return collect_status(self.topo)

    def bgp(self) -> list[dict]:
        return speaker_statuses(self.plan)
