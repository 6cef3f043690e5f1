"""The Mininet lab backend: namespaces are Mininet hosts, links are Mininet links.

`MininetBackend` is the kernel backend with two decisions changed: how a namespace comes
to exist (a Mininet host, i.e. a shell started by `mnexec -cdn`, whose namespace is then
given its vispd name with a bind mount, exactly like `ip netns attach`) and how a veth
pair comes to exist (`Mininet.addLink`, a `TCLink` shaped to the capacity the plan gives
the device when Mininet can shape it, i.e. up to 1 Gbit/s). Everything else (marking,
addresses, macvlans, HTB classes per slice, the guard, routes, daemons) is the same
node-level apply code as `vispd up`. vispd's HTB then replaces Mininet's single class
at the same capacity, adding the per-slice classes.

Declared link delay, jitter and loss are never given to Mininet: TCLink's `delay=`,
`jitter=` and `loss=` need netem and, on a kernel without it, Mininet only logs an error
and builds the link undelayed. The plan realises them itself, as for `vispd up`: netem
leaves under vispd's HTB classes, or the delay processes (compiler.delay), which run in
the node hosts' namespaces and hold packets in the sliver hosts'. `TCLink` gets `bw` only.

Mininet's own cleanup (`mn -c`) is never used: it kills every mnexec and deletes every
`*-eth*` link on the machine. Hosts are stopped by PID (`stop_hosts`), and each shell's
PID is recorded in the topology's state (`lab-shells`) so `vispd down` can stop the shells
of a lab whose process died.

I/O: Mininet hosts (shells) and links, stopped by PID.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

from compiler.resources import Shaping
from . import netns
from .host import KernelHost
from .kernel import KernelBackend
from .shells import process_start

MININET_MAX_BW = 1_000_000_000  # TCLink refuses bandwidths above 1000 Mbit/s


class _QuietHtb(logging.Filter):
    """Mininet logs tc's harmless 'quantum of class is big' warning as an error, per link."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "quantum of class" not in record.getMessage()


def _mininet():
    # Mininet is imported only when a lab is built: it is heavy, and only labs need it.
    from mininet.log import lg, setLogLevel
    from mininet.net import Mininet

    setLogLevel(os.environ.get("VISPD_MININET_LOG", "output"))
    if not any(isinstance(f, _QuietHtb) for f in lg.filters):
        lg.addFilter(_QuietHtb())
    return Mininet(topo=None, controller=None, build=False)


class MininetHost(KernelHost):
    """The kernel Host, except that namespaces are Mininet hosts and veth pairs Mininet links."""

    def __init__(self, topology: str, plan, host_names: dict[str, str], **kwargs):
        super().__init__(topology, **kwargs)
        self.net = _mininet()
        self.host_names = host_names
        self.hosts: dict[str, object] = {}  # namespace -> mininet Host
        self.capacity = {(r.ns, r.ifname): r.capacity for r in plan.resources
                         if isinstance(r, Shaping) and r.capacity}
        self.timings: dict[str, float] = {"hosts": 0.0, "links": 0.0}

    def netns_create(self, ns: str) -> None:
        started = time.perf_counter()
        stale = self.hosts.pop(ns, None)
        if stale is not None:
            _terminate(stale)
        host = self.net.addHost(self.host_names.get(ns, ns), ip=None)
        self._record_shell(ns, host.pid)
        netns.publish(ns, host.pid)
        self.hosts[ns] = host
        self._fresh.add(ns)
        self.timings["hosts"] += time.perf_counter() - started

    def veth_create(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, mtu: int,
                    mac: str = "", peer_mac: str = "") -> None:
        from mininet.link import Link, TCLink  # Mininet is imported only when a lab is built

        one, other = self.hosts.get(ns), self.hosts.get(peer_ns)
        if one is None or other is None:  # a namespace made by an earlier `vispd up`
            super().veth_create(ns, ifname, peer_ns, peer_ifname, mtu, mac, peer_mac)
            return
        started = time.perf_counter()
        capacity = self.capacity.get((ns, ifname))
        params = {}
        cls = Link
        if capacity and capacity <= MININET_MAX_BW:
            cls, params = TCLink, {"bw": capacity / 1e6}  # never delay/jitter/loss: see the docstring
        self.net.addLink(one, other, intfName1=ifname, intfName2=peer_ifname, cls=cls,
                         addr1=mac or None, addr2=peer_mac or None, **params)
        self.forget_index(ns, ifname)
        self.forget_index(peer_ns, peer_ifname)
        self.timings["links"] += time.perf_counter() - started

    def netns_delete(self, ns: str) -> None:
        host = self.hosts.pop(ns, None)
        if host is not None:
            _terminate(host)
        super().netns_delete(ns)

    def _record_shell(self, ns: str, pid: int) -> None:
        with open(self.shells_file, "a") as handle:
            handle.write(f"{ns} {pid} {process_start(pid)}\n")

    def stop_hosts(self) -> None:
        """Stop every Mininet host shell this backend started (by PID)."""
        for ns in list(self.hosts):
            _terminate(self.hosts.pop(ns))


def _terminate(host) -> None:
    shell = host.shell
    if shell is not None and shell.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGHUP)  # what Mininet's Node.terminate sends
        with contextlib.suppress(Exception):
            shell.wait(timeout=5)
    host.shell = None


class MininetBackend(KernelBackend):
    """The kernel backend over a `MininetHost`: `net`, `hosts` and `timings` are its Mininet's."""

    host_class = MininetHost

    def __init__(self, topology: str, plan, host_names: dict[str, str], **kwargs):
        super().__init__(topology, plan=plan, host_names=host_names, **kwargs)

    @property
    def net(self):
        return self.host.net

    @property
    def timings(self) -> dict[str, float]:
        return self.host.timings

    def stop_hosts(self) -> None:
        self.host.stop_hosts()
