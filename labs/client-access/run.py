#!/usr/bin/env python3
"""Lab client-access: can a remote OpenVPN user reach the Internet through the vISP, how
fast does the tunnel come up, what RTT and throughput does it give, and are revoked and
foreign certificates refused? (README.md in this directory.)

    python3 labs/client-access/run.py [--short] [--topology PATH] [--out DIR]

The topology is built in Mininet (vispd.labnet.Lab). The user's profile is fetched with
`vispd access profile TOPO SLICE USER --type openvpn` (the CLI, as a user would), and the
real OpenVPN client runs with it in the access point's client host on the lab's public
underlay (outside the vISP). Then:
  * connect time: client process started -> tunnel address up (and -> OpenVPN's
    "Initialization Sequence Completed", and -> first echo reply from the Internet host),
    over several connects;
  * RTT (a probe every 10 ms) through the tunnel to the Internet host 203.0.113.10, to the
    access sliver's loopback and to the farthest sliver's loopback, and without the tunnel
    to the access point's public address (the underlay alone);
  * iperf3 through the tunnel: download and upload with the Internet host, download from
    the farthest sliver;
  * refusals: a client with a certificate from another CA (same user name), and the user
    revoked with `vispd access revoke` while connected (how long until the live session is
    closed), then reconnecting with the revoked certificate.

I/O (root): builds the lab, measures, tears it down.
"""
from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
import shutil
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[0:1] = [REPO, os.path.dirname(HERE), HERE]

import lablib  # noqa: E402
import networkx as nx  # noqa: E402
from access import pki  # noqa: E402
from lablib import alive, say, wait_for  # noqa: E402
import failures  # noqa: E402
from client import Addresses, Client  # noqa: E402
from report_plot import plot  # noqa: E402

PROBE_INTERVAL = 0.01
TUN = "tun-lab0"          # the client's tunnel device (in the client host)
FULL = dict(connects=5, rtt_s=10.0, iperf_s=10.0, refuse_wait=6.0)
SHORT = dict(connects=2, rtt_s=2.0, iperf_s=2.0, refuse_wait=3.0)




def vispd_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The vispd CLI of this checkout (same VISPD_STATE_DIR as the lab)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-c", "import sys; from vispd.cli import main; sys.exit(main())", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"vispd {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def q(p):
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"count": len(values), "median": round(statistics.median(values), 3), "p10": q(0.10),
            "p90": q(0.90), "p99": q(0.99), "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}


class Run:
    def __init__(self, lab, args, settings: dict, out: str):
        self.lab, self.args, self.settings, self.out = lab, args, settings, out
        self.topo, self.plan = lab.topo, lab.plan
        points = [p for p in self.plan.access_points if p.type == "openvpn"
                  and (args.slice is None or p.slice == args.slice)
                  and (args.user in p.users)]
        if not points:
            raise SystemExit(f"no OpenVPN access point for user {args.user}"
                             + (f" in slice {args.slice}" if args.slice else "") + " in this topology")
        self.point = points[0]
        self.slice = self.point.slice
        self.client_host = next(h for h, ns in lab.hosts().items() if ns == self.point.client_ns)
        self.client_ns = self.point.client_ns
        self.access_sliver = lab.sliver(self.slice, self.point.node)
        self.target = self.plan.internet_host or "203.0.113.10"
        self.far_sliver = self.farthest_sliver()
        daemon = next(r for r in self.plan.resources if r.KIND == "daemon" and r.name == self.point.daemon)
        argv = list(daemon.argv)
        self.server_log = os.path.join(argv[argv.index("--cd") + 1], f"{self.point.daemon}.log")
        self.clients: list[Client] = []
        self.pids: list[int] = []
        self.events: list[tuple[float, str]] = []
        self.figures: dict = {}
        self.iperf_series: dict[str, list] = {}
        self.rtts: dict[str, list[float]] = {}
        self.addresses = Addresses(self.client_ns)

    def farthest_sliver(self) -> str:
        """The slice's sliver farthest (IGP cost) from the access point."""
        sl = self.topo.slice(self.slice)
        graph = nx.Graph()
        for link in self.topo.slice_links(sl):
            graph.add_edge(*link.between, weight=link.cost)
        if self.point.node not in graph:
            return self.lab.sliver(self.slice, self.point.node)
        lengths = nx.single_source_dijkstra_path_length(graph, self.point.node)
        return self.lab.sliver(self.slice, max(sorted(lengths), key=lambda n: lengths[n]))

    def client(self, profile: str, dev: str, tag: str) -> Client:
        c = Client(self.lab, self.client_host, profile, dev, os.path.join(self.workdir, f"openvpn-{tag}.log"))
        self.clients.append(c)
        self.pids.append(c.proc.pid)
        return c

    def server_log_size(self) -> int:
        try:
            return os.path.getsize(self.server_log)
        except OSError:
            return 0

    def server_log_since(self, offset: int) -> list[str]:
        try:
            with open(self.server_log, errors="replace") as handle:
                handle.seek(offset)
                return handle.read().splitlines()
        except OSError:
            return []

    # -- steps ------------------------------------------------------------------------------
    def ready(self, timeout: float = 60.0) -> None:
        """Egress is up: the access sliver reaches the Internet host."""
        started = time.monotonic()
        if failures.wait_reachable(self.lab, self.access_sliver, self.target, timeout) is None:
            raise RuntimeError(f"{self.access_sliver} does not reach {self.target} after {timeout:.0f} s")
        self.figures["egress_ready_after_build_s"] = round(time.monotonic() - started, 2)
        reach = self.lab.cmd(self.client_host, ["ping", "-c", "1", "-W", "1", self.target])
        self.figures["internet_reachable_without_tunnel"] = " 0% packet loss" in reach
        say(f"egress ready; {self.client_host} reaches {self.target} without the tunnel: "
            f"{self.figures['internet_reachable_without_tunnel']}")

    def fetch_profile(self) -> str:
        path = os.path.join(self.workdir, f"{self.args.user}.ovpn")
        started = time.monotonic()
        vispd_cli("access", "profile", self.topo.name, self.slice, self.args.user, "--type", "openvpn",
                  "--node", self.point.node, "-o", path)
        self.figures["profile_s"] = round(time.monotonic() - started, 3)
        with open(path) as handle:
            text = handle.read()
        remote = re.search(r"^remote (\S+) (\d+)", text, re.M)
        proto = re.search(r"^proto (\S+)", text, re.M)
        self.figures["profile"] = {"remote": remote.group(1) if remote else None,
                                   "port": int(remote.group(2)) if remote else None,
                                   "proto": proto.group(1) if proto else None,
                                   "inline_certificates": "<cert>" in text and "<key>" in text}
        say(f"profile: {path} ({self.figures['profile']})")
        return path

    def connect(self, profile: str, tag: str, timeout: float = 30.0) -> tuple[Client, dict]:
        """Start the client with probes to the Internet host already running (they fail,
        unsendable, until the tunnel's routes exist), so the first reply is timed to
        within one probe interval, not by how fast a prober starts."""
        probe = lablib.Pinger(self.lab, self.client_host, self.target, PROBE_INTERVAL).start()
        self.pids.append(probe.proc.pid)
        probe.wait(lambda trace: len(trace) > 0, 10)
        c = self.client(profile, TUN, tag)
        address = wait_for(lambda: self.addresses.of(TUN), timeout, 0.002)
        up = time.monotonic() if address else None
        init = wait_for(lambda: c.said("Initialization Sequence Completed"), 10 if address else 0.1, 0.005)
        if address:
            probe.wait(lambda trace: any(s.answered and s.received > c.started for s in trace), 10)
        trace = probe.stop()
        reply = next((s.received for s in trace if s.answered and s.received > c.started), None)
        result = {"address": address,
                  "tunnel_up_s": round(up - c.started, 4) if up else None,
                  "initialization_completed_s": round(init - c.started, 4) if init else None,
                  "first_internet_reply_s": round(reply - c.started, 4) if reply else None}
        return c, result

    def connects(self, profile: str) -> Client:
        runs = []
        for i in range(self.settings["connects"]):
            c, result = self.connect(profile, f"connect{i}")
            runs.append(result)
            say(f"connect {i + 1}/{self.settings['connects']}: {result}")
            if not result["address"]:
                raise RuntimeError(f"the tunnel did not come up: {c.lines[-10:]}")
            if i + 1 < self.settings["connects"]:
                c.stop()
                wait_for(lambda: self.addresses.of(TUN) is None, 10)
        self.figures["connects"] = runs
        for key in ("tunnel_up_s", "initialization_completed_s", "first_internet_reply_s"):
            self.figures[f"connect_{key}_median"] = lablib.median([r[key] for r in runs])
        self.figures["tunnel_address"] = runs[-1]["address"]
        return c

    def routes(self) -> None:
        devs = {dst: self.addresses.route_dev(dst) for dst in
                (self.target, self.lab.address(self.far_sliver), self.point.public_address)}
        self.figures["route_devices"] = devs
        say(f"client routes: {devs}")

    def rtt(self) -> None:
        targets = {
            "internet_host": self.target,
            "access_sliver": self.lab.address(self.access_sliver),
            "far_sliver": self.lab.address(self.far_sliver),
            "underlay_no_tunnel": self.point.public_address,
        }
        out = {}
        for name, address in targets.items():
            pinger = lablib.Pinger(self.lab, self.client_host, address, PROBE_INTERVAL).start()
            self.pids.append(pinger.proc.pid)
            time.sleep(self.settings["rtt_s"])
            trace = pinger.stop()
            settled = [s for s in trace if s.sent <= trace[-1].sent - 0.2] if trace else []
            rtts = [s.rtt_ms for s in settled if s.answered]
            self.rtts[name] = rtts
            out[name] = {"address": address, **quantiles(rtts),
                         "lost": sum(1 for s in settled if not s.answered), "sent": len(settled)}
            say(f"rtt {name} ({address}): median {out[name].get('median')} ms, "
                f"p99 {out[name].get('p99')} ms, lost {out[name]['lost']}/{out[name]['sent']}")
        self.figures["rtt_ms"] = out
        base = out["underlay_no_tunnel"].get("median")
        self.figures["rtt_internet_vs_underlay"] = (round(out["internet_host"]["median"] / base, 2)
                                                    if base and out["internet_host"].get("median") else None)

    def throughput(self) -> None:
        seconds = self.settings["iperf_s"]
        tests = {
            "internet_download": ("internet", self.target, ("-R",), "client"),
            "internet_upload": ("internet", self.target, (), "server"),
            "far_sliver_download": (self.far_sliver, self.lab.address(self.far_sliver), ("-R",), "client"),
        }
        out = {}
        for name, (server, address, extra, receiver) in tests.items():
            iperf = lablib.Iperf(self.lab, server, self.client_host, address, seconds, interval=0.2,
                                 extra=extra).start()
            self.pids += [iperf.server.pid, iperf.client.pid]
            started = time.monotonic()
            iperf.wait(seconds + 15)
            intervals = iperf.intervals(receiver)
            self.iperf_series[name] = [(iv.end - started, iv.bps / 1e6) for iv in intervals]
            rates = [iv.bps / 1e6 for iv in intervals]
            # the first interval holds slow start, the last may be a fraction of one
            steady = rates[1:-1] if len(rates) > 3 else rates
            total = summary_rate(iperf.lines[receiver])
            out[name] = {"server": server, "address": address,
                         "mbps": round(total, 1) if total is not None else None,
                         "median_interval_mbps": round(statistics.median(steady), 1) if steady else None,
                         "min_interval_mbps": round(min(steady), 1) if steady else None,
                         "intervals": len(rates)}
            say(f"iperf3 {name}: {out[name]}")
        self.figures["throughput"] = out

    def refusals(self, profile: str, connected: Client) -> None:
        out = {}
        # 1. the user revoked while connected: the live session must be closed
        started = time.monotonic()
        said = vispd_cli("access", "revoke", self.topo.name, self.slice, self.args.user).stdout.strip()
        command = time.monotonic() - started
        closed = wait_for(lambda: connected.proc.poll() is not None or self.addresses.of(TUN) is None, 15)
        out["revoke"] = {"vispd_said": said.splitlines(),
                         "command_s": round(command, 3),
                         "session_closed": bool(closed),
                         "session_closed_s": round(time.monotonic() - started, 3) if closed else None}
        connected.stop()
        wait_for(lambda: self.addresses.of(TUN) is None, 10)
        # 2. reconnecting with the revoked certificate; 3. a certificate from another CA
        #    with the same user name
        out["revoked_reconnect"] = self.attempt(profile, "tun-lab1", "revoked", ("certificate revoked", "CRL"))
        out["foreign_ca"] = self.attempt(self.rogue_profile(profile), "tun-lab2", "foreign",
                                         ("unable to get local issuer", "VERIFY ERROR"))
        self.figures["refusals"] = out
        say(f"refusals: revoke closed the session: {out['revoke']['session_closed']} "
            f"({out['revoke']['session_closed_s']} s after the command started); revoked reconnect refused: "
            f"{out['revoked_reconnect']['refused']} ({out['revoked_reconnect']['server_refused_after_s']} s); "
            f"foreign CA refused: {out['foreign_ca']['refused']} ({out['foreign_ca']['server_refused_after_s']} s)")

    def attempt(self, profile: str, dev: str, tag: str, refusal: tuple[str, ...]) -> dict:
        """A client that must be refused: started, watched until the server logs its
        refusal (then `grace` s more, in case a tunnel still came up) or `refuse_wait` s."""
        wait, grace = self.settings["refuse_wait"], 1.0
        offset = self.server_log_size()
        c = self.client(profile, dev, tag)

        def refused_line():
            return next((ln for ln in self.server_log_since(offset) if any(k in ln for k in refusal)
                         and "VERIFY ERROR" in ln), None)

        line = wait_for(lambda: refused_line() or self.addresses.of(dev), wait, 0.005)
        refused_at = time.monotonic() if line and not self.addresses.of(dev) else None
        if refused_at:
            time.sleep(grace)
        address = self.addresses.of(dev)
        lines = self.server_log_since(offset)
        result = {"refused": address is None and c.said("Initialization Sequence Completed") is None,
                  "tunnel_address": address,
                  "server_refused_after_s": round(refused_at - c.started, 3) if refused_at else None,
                  "server_said": [ln.split(" ", 2)[-1] for ln in lines
                                  if "VERIFY ERROR" in ln or "fatal SSL alert" in ln][:2]}
        c.stop()
        return result

    def rogue_profile(self, profile: str) -> str:
        """The user's profile with a certificate and key from another CA (same user name)."""
        rogue_dir = os.path.join(self.workdir, "rogue-pki")
        pki.ensure_ca(rogue_dir, "rogue")
        pki.ensure_client(rogue_dir, self.args.user)
        _, cert, key = pki.read_client_material(rogue_dir, self.args.user)
        with open(profile) as handle:
            text = handle.read()
        text = text[:text.index("<cert>")] + f"<cert>\n{cert.strip()}\n</cert>\n<key>\n{key.strip()}\n</key>\n"
        path = os.path.join(self.workdir, "rogue.ovpn")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(text)
        return path

    def run(self, workdir: str) -> None:
        self.workdir = workdir
        self.ready()
        profile = self.fetch_profile()
        connected = self.connects(profile)
        self.routes()
        self.rtt()
        self.throughput()
        if not self.args.no_refusals:
            self.refusals(profile, connected)

    def stop(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                c.stop()
        with contextlib.suppress(Exception):
            self.addresses.close()


_SUMMARY = re.compile(r"^\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+[\d.]+\s+\S*Bytes\s+([\d.]+)\s+([KMG]?)bits/sec.*receiver")
_SCALE = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}


def summary_rate(lines) -> float | None:
    """The receiver's summary rate (Mbit/s) from iperf3 output lines."""
    for _, line in lines:
        m = _SUMMARY.match(line)
        if m:
            return float(m.group(1)) * _SCALE[m.group(2)]
    return None


# -- main ---------------------------------------------------------------------------------------
def extra_args(parser) -> None:
    parser.set_defaults(topology=os.path.join(REPO, "topologies", "abilene.yaml"))
    parser.add_argument("--slice", help="the slice (default: the first with an OpenVPN access point for the user)")
    parser.add_argument("--user", default="alice", help="the OpenVPN user (default: %(default)s)")
    parser.add_argument("--no-refusals", action="store_true", help="skip the revoked/foreign certificate checks")



def main(argv: list[str] | None = None) -> int:
    args = lablib.parse_args("client-access", __doc__, argv, extra=extra_args)
    lablib.require_root()
    settings = dict(SHORT if args.short else FULL)
    lab = lablib.open_lab(args.topology, args.backend)
    name = lab.topo.name
    workdir = tempfile.mkdtemp(prefix="vispd-client-access-")
    say(f"building {name} ({args.backend}) from {args.topology}")
    run = None
    try:
        lab.start()
        say(f"built in {lab.times.total:.1f} s")
        run = Run(lab, args, settings, args.out)
        say(f"access point: {run.point.type} {run.slice}@{run.point.node} {run.point.public_address}:"
            f"{run.point.port}; client host {run.client_host}; farthest sliver {run.far_sliver}")
        run.run(workdir)
        figs = {"lab": "client-access", "mode": "short" if args.short else "full", "topology": name,
                "slice": run.slice, "user": args.user, "client_host": run.client_host,
                "access_point": {"node": run.point.node, "public_address": run.point.public_address,
                                 "port": run.point.port, "pool": run.point.pool},
                "far_sliver": run.far_sliver, "target": run.target,
                "probe_interval_ms": PROBE_INTERVAL * 1000, "build_s": round(lab.times.total, 2),
                "load_average": [round(x, 2) for x in os.getloadavg()], **run.figures}
        fig = plot(run, figs)
    finally:
        if run is not None:
            run.stop()
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figs["leftovers"] = {"namespaces": lablib.namespaces_of(name),
                         "processes": [pid for pid in run.pids if alive(pid)]}
    paths = lablib.write_report(args.out, figs, fig)
    t = figs.get("throughput", {})
    say(f"tunnel up in {figs.get('connect_tunnel_up_s_median')} s (median); Internet RTT "
        f"{figs.get('rtt_ms', {}).get('internet_host', {}).get('median')} ms; download "
        f"{t.get('internet_download', {}).get('mbps')} Mbit/s, upload {t.get('internet_upload', {}).get('mbps')} Mbit/s")
    say(f"report: {paths['figures']}, {paths['plot']}")
    ok = (figs.get("tunnel_address") is not None
          and (t.get("internet_download", {}).get("mbps") or 0) > 0
          and not any(figs["leftovers"].values()))
    if figs.get("refusals"):
        ref = figs["refusals"]
        ok = ok and ref["revoke"]["session_closed"] and ref["revoked_reconnect"]["refused"] and ref["foreign_ca"]["refused"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
