#!/usr/bin/env python3
"""vispd slice-access benchmark (issue 4, "Benchmark"). Run as root:

    python3 bench/access.py [--connects 5] [--runs 7] [--other-runs 5] [--pptp-runs 3] [--seconds 3]

1. `vispd up` of a renamed copy of topologies/abilene.yaml (`hxXXXXXX`, a private
   VISPD_STATE_DIR) without the research slice and the providers (plb's egress goes with
   them), keeping plb's access points: OpenVPN at new-york, WireGuard at seattle, the local
   sockets. Remote clients run in the client hosts vispd builds on the lab's public
   underlay (`vispd.T.+c-TYPE-plb-NODE`), from the profiles `vispd access profile` writes,
   started as tests/netns/test_access.py starts them.
2. Connect time (median of --connects): from starting the client (`openvpn --config
   PROFILE --dev D --dev-type tun`; `wireguard-go -f IF` + the wg-quick steps) to its
   tunnel address being assigned *and* a first ping answered by the access point's own
   sliver (its loopback). The client is stopped by PID between connects.
3. Throughput (iperf3 -t --seconds, TCP, client pinned to CPU 0, server to CPU 1; median of
   --runs pairs for OpenVPN, --other-runs for WireGuard, --pptp-runs): from the client host
   through the tunnel to an iperf3 server in plb's sliver on a neighbouring node:
   washington for the new-york OpenVPN point (and PPTP), sunnyvale for the seattle
   WireGuard point.
4. Plain OpenVPN pair in the same run (bench/access_plain.py): namespaces `vbx-TAG-s` and
   `vbx-TAG-c` joined by a veth, the server config rendered by access/openvpn.py (same
   cipher negotiation, keepalive, CRL...), a PKI from access.pki, iperf3 to the server's
   tunnel address. vISP and plain runs alternate (and which goes first alternates), so
   slow drifts of this shared machine hit both; `openvpn_vs_plain_ratio` = median vISP
   Mbit/s / median plain Mbit/s (goal >= 0.8), and the median of the per-pair ratios is
   given too. A third leg in each round sends through the same vISP tunnel to the access
   point's own sliver (no forwarding after the tunnel), to separate the tunnel from the
   forwarding behind it. The CPU time the OpenVPN server and client used during each run
   is recorded (from /proc; softirq work done in a process's syscalls is charged to it),
   to see which process is the bottleneck.
5. PPTP (bench/access_pptp.py): `up` does not build PPTP yet, so the bench runs pptpd with
   access/pptp's PPP engine in new-york's plb sliver and the client engine in the OpenVPN
   client host itself; if that fails, `pptp_mbps` is null and `pptp_error` says why.
   For context, TCP between the new-york and washington slivers without any tunnel.
Everything is removed in a `finally`: every process started here stopped by PID (with its
descendants), `vispd down`, the vbx- namespaces. The last line printed is one JSON object.

I/O (root): namespaces, daemons and clients of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

# Run as a script, Python puts bench/ first on sys.path, where this very file would shadow
# the `access` package: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = REPO
elif REPO not in sys.path:
    sys.path.insert(0, REPO)

import yaml  # noqa: E402

from measure import median as median_of, ratio, say  # noqa: E402

from access import wireguard as wg  # noqa: E402
from bench import iperfrun  # noqa: E402
from bench.access_plain import PlainPair  # noqa: E402
from bench.access_pptp import PptpPoint  # noqa: E402
from bench.access_proc import Procs, children_of, has_link, ipv4_of, pings, wait_for  # noqa: E402

ABILENE = os.path.join(REPO, "topologies", "abilene.yaml")
SLICE = "plb"
OPENVPN_NODE, OPENVPN_TARGET = "new-york", "washington"
WIREGUARD_NODE, WIREGUARD_TARGET = "seattle", "sunnyvale"
PORT = 15291


def vispd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "vispd.cli", *args], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(f"vispd {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def bench_topology(name: str) -> tuple[str, dict]:
    """abilene.yaml renamed, without research and the providers; plb keeps its access."""
    with open(ABILENE) as handle:
        topo = yaml.safe_load(handle)
    topo["name"] = name
    topo.pop("providers", None)
    topo["slices"] = [s for s in topo["slices"] if s["name"] == SLICE]
    for sl in topo["slices"]:
        sl.pop("egress", None)
    topo["access"] = [a for a in topo.get("access", []) if a["slice"] == SLICE]
    kinds = {(a["type"], tuple(a["nodes"]) if isinstance(a["nodes"], list) else a["nodes"]) for a in topo["access"]}
    assert ("openvpn", (OPENVPN_NODE,)) in kinds and ("wireguard", (WIREGUARD_NODE,)) in kinds, kinds
    return yaml.safe_dump(topo, sort_keys=False, default_flow_style=None), topo


def median(values: list[float]) -> float | None:
    return median_of(values, digits=4)


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of `pid` (0 when unknown or gone)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def measure(ns: str, source: str, server: iperfrun.Server, seconds: int, pids: dict[str, int | None]) -> dict:
    """One iperf3 TCP run; Mbit/s, retransmits and the CPU share of each process in `pids`."""
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    start = time.monotonic()
    report = iperfrun.client(ns, source, server, seconds, udp=False)
    wall = time.monotonic() - start
    return {"mbps": round(iperfrun.tcp_mbps(report), 1),
            "retransmits": report["end"]["sum_sent"].get("retransmits"),
            "cpu": {k: round((cpu_seconds(p) - before[k]) / wall, 2) for k, p in pids.items()}}


class VispClients:
    """The vISP's remote clients, started as tests/netns/test_access.py starts them."""

    def __init__(self, name: str, work: str, procs: Procs, loopbacks: dict[str, str]):
        self.name, self.work, self.procs, self.loopbacks = name, work, procs, loopbacks
        self.tag = name[2:]
        self.ovpn_ns = f"vispd.{name}.+c-openvpn-{SLICE}-{OPENVPN_NODE}"
        self.wg_ns = f"vispd.{name}.+c-wireguard-{SLICE}-{WIREGUARD_NODE}"
        self.ovpn_profile = os.path.join(work, "alice.ovpn")
        self.wg_profile = os.path.join(work, "alice.conf")
        self.ovpn_dev = "hxovpn"
        self.wg_if = f"hxwg{self.tag}"[:15]  # machine-wide unique (wireguard-go's socket dir)
        self.ovpn = None
        self.wg = None
        vispd("access", "profile", name, SLICE, "alice", "--type", "openvpn", "-o", self.ovpn_profile)
        vispd("access", "profile", name, SLICE, "alice", "--type", "wireguard", "-o", self.wg_profile)
        with open(self.wg_profile) as handle:
            self.wg_parsed = wg.parse_wg_quick(handle.read())
        self.wg_key = os.path.join(work, "alice-wg.key")
        with open(os.open(self.wg_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(self.wg_parsed["interface"]["PrivateKey"] + "\n")
        self.public_address = next(line.split()[1] for line in open(self.ovpn_profile)
                                   if line.startswith("remote "))

    def openvpn_connect(self) -> tuple[str, float, float]:
        """(address/len, seconds to the address, seconds to the first ping of the point's sliver)."""
        wait_for(lambda: not has_link(self.ovpn_ns, self.ovpn_dev), 10, 0.02, None, "previous OpenVPN tun gone")
        start = time.monotonic()
        self.ovpn = self.procs.start(self.ovpn_ns, ["openvpn", "--config", self.ovpn_profile, "--dev", self.ovpn_dev,
                                                    "--dev-type", "tun", "--verb", "3"], "openvpn-client.log")
        address = wait_for(lambda: ipv4_of(self.ovpn_ns, self.ovpn_dev), 20, 0.005, self.ovpn,
                           "vISP OpenVPN client address")
        got_address = time.monotonic() - start
        wait_for(lambda: pings(self.ovpn_ns, self.loopbacks[OPENVPN_NODE]), 10, 0.0, self.ovpn,
                 "vISP OpenVPN first ping")
        return address, got_address, time.monotonic() - start

    def openvpn_disconnect(self) -> None:
        if self.ovpn is not None:
            self.procs.stop(self.ovpn)
            self.ovpn = None

    def wireguard_connect(self) -> tuple[str, float, float]:
        wait_for(lambda: not os.path.exists(wg.socket_path(self.wg_if)), 10, 0.02, None, "previous wireguard-go gone")
        start = time.monotonic()
        self.wg = self.procs.start(self.wg_ns, [wg.WIREGUARD_GO, "-f", self.wg_if], "wireguard-client.log")
        wait_for(lambda: os.path.exists(wg.socket_path(self.wg_if)), 10, 0.002, self.wg, "wireguard-go socket")
        for step in wg.client_steps(self.wg_parsed, self.wg_if, self.wg_key):
            subprocess.run(["ip", "netns", "exec", self.wg_ns, *step], check=True, capture_output=True)
        address = wait_for(lambda: ipv4_of(self.wg_ns, self.wg_if), 5, 0.005, self.wg, "WireGuard address")
        got_address = time.monotonic() - start
        wait_for(lambda: pings(self.wg_ns, self.loopbacks[WIREGUARD_NODE]), 10, 0.0, self.wg,
                 "vISP WireGuard first ping")
        return address, got_address, time.monotonic() - start

    def wireguard_disconnect(self) -> None:
        if self.wg is not None:
            self.procs.stop(self.wg)
            self.wg = None


def openvpn_server_pid(name: str) -> int | None:
    path = os.path.join(os.environ["VISPD_STATE_DIR"], name, "run", f"openvpn-{SLICE}-{OPENVPN_NODE}.pid")
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connects", type=int, default=5, help="connects per access type (median)")
    parser.add_argument("--runs", type=int, default=7, help="vISP/plain OpenVPN iperf3 pairs (median)")
    parser.add_argument("--other-runs", type=int, default=5, help="iperf3 runs for WireGuard (median)")
    parser.add_argument("--seconds", type=int, default=3, help="iperf3 -t")
    parser.add_argument("--pptp-runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="one connect and one 1-second run of each (for the test suite: the bench must not rot)")
    parser.add_argument("--prefix", default="hx", help="start of the topology's name (default %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.connects = args.runs = args.other_runs = args.pptp_runs = args.seconds = 1
    return args


class AccessBench:
    """One run of the bench: the vISP, the plain pair, and what each phase measured."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="hx-access-")
        os.environ["VISPD_STATE_DIR"] = os.path.join(self.work, "state")
        self.name = f"{args.prefix}{uuid.uuid4().hex[:6]}"
        self.tag = self.name[len(args.prefix):]
        self.path = os.path.join(self.work, f"{self.name}.yaml")
        text, topo = bench_topology(self.name)
        with open(self.path, "w") as handle:
            handle.write(text)
        self.slice_prefix = next(s["prefix"] for s in topo["slices"] if s["name"] == SLICE)
        self.slice_bandwidth = next(s.get("bandwidth") for s in topo["slices"] if s["name"] == SLICE)
        self.procs = Procs(self.work)
        self.plain = PlainPair(self.tag, self.work, self.procs)
        self.result: dict = {
            "topology": self.name, "slice_bandwidth": self.slice_bandwidth, "iperf3_seconds": args.seconds,
            "openvpn_path": f"+c-openvpn-{SLICE}-{OPENVPN_NODE} -> {SLICE}@{OPENVPN_TARGET}",
            "wireguard_path": f"+c-wireguard-{SLICE}-{WIREGUARD_NODE} -> {SLICE}@{WIREGUARD_TARGET}"}
        self.raw: dict = {}
        self.servers: list[iperfrun.Server] = []
        self.was_up = False

    def server(self, ns: str, address: str) -> iperfrun.Server:
        server = iperfrun.Server(ns, address, PORT)
        self.servers.append(server)
        server.start()
        return server

    def build(self) -> None:
        t0 = time.monotonic()
        vispd("up", self.path)
        self.was_up = True
        self.result["up_s"] = round(time.monotonic() - t0, 2)
        say(f"{self.name}: up in {self.result['up_s']} s (state {os.environ['VISPD_STATE_DIR']})")
        status = json.loads(vispd("status", self.name, "--json").stdout)
        self.loopbacks = {s["node"]: s["loopback"] for s in status["slivers"] if s["slice"] == SLICE}
        self.sliver = {s["node"]: s["namespace"] for s in status["slivers"] if s["slice"] == SLICE}
        self.clients = VispClients(self.name, self.work, self.procs, self.loopbacks)
        self.plain.build()
        self.plain.start_server()

    def connect_times(self) -> None:
        """Start -> address -> first ping of the point's sliver, per access type."""
        raw, clients, plain = self.raw, self.clients, self.plain
        for key in ("openvpn_connect", "openvpn_address_s", "plain_openvpn_connect", "wireguard_connect",
                    "wireguard_address_s"):
            raw[key] = []
        for _ in range(self.args.connects):
            address, got, first = clients.openvpn_connect()
            self.pool = address
            raw["openvpn_address_s"].append(round(got, 4))
            raw["openvpn_connect"].append(round(first, 4))
            clients.openvpn_disconnect()
            t0 = time.monotonic()
            plain.connect()
            raw["plain_openvpn_connect"].append(round(time.monotonic() - t0, 4))
            plain.disconnect()
            wait_for(lambda: not has_link(plain.client_ns, plain.client_dev), 10, 0.02, None, "plain tun gone")
            _, got, first = clients.wireguard_connect()
            raw["wireguard_address_s"].append(round(got, 4))
            raw["wireguard_connect"].append(round(first, 4))
            clients.wireguard_disconnect()
        say(f"connect (start -> address -> first ping of the point's sliver), median of {self.args.connects}: "
            f"OpenVPN {median(raw['openvpn_connect'])} s (address {median(raw['openvpn_address_s'])} s), "
            f"plain OpenVPN pair {median(raw['plain_openvpn_connect'])} s, "
            f"WireGuard {median(raw['wireguard_connect'])} s")

    def openvpn_throughput(self) -> None:
        """OpenVPN through the vISP vs the plain pair (and to the point's own sliver), alternating."""
        clients, plain, raw, seconds = self.clients, self.plain, self.raw, self.args.seconds
        vpn_address = clients.openvpn_connect()[0].split("/")[0]
        plain_address = plain.connect()
        self.target = self.server(self.sliver[OPENVPN_TARGET], self.loopbacks[OPENVPN_TARGET])
        own = self.server(self.sliver[OPENVPN_NODE], self.loopbacks[OPENVPN_NODE])
        plain_target = self.server(plain.server_ns, plain.server_tunnel_address)
        vpn_pids = {"server": openvpn_server_pid(self.name), "client": clients.ovpn.pid}
        plain_pids = {"server": plain.server.pid, "client": plain.client.pid}
        legs = {"vispd": lambda: measure(clients.ovpn_ns, vpn_address, self.target, seconds, vpn_pids),
                "plain": lambda: measure(plain.client_ns, plain_address, plain_target, seconds, plain_pids),
                "own": lambda: measure(clients.ovpn_ns, vpn_address, own, seconds, vpn_pids)}
        raw["openvpn"], raw["plain_openvpn"], raw["openvpn_own_sliver"], raw["pair_ratio"] = [], [], [], []
        for i in range(self.args.runs):
            names = list(legs)
            runs = {which: legs[which]() for which in names[i % 3:] + names[:i % 3]}  # the first leg rotates
            raw["openvpn"].append(runs["vispd"])
            raw["plain_openvpn"].append(runs["plain"])
            raw["openvpn_own_sliver"].append(runs["own"])
            raw["pair_ratio"].append(round(runs["vispd"]["mbps"] / runs["plain"]["mbps"], 3))
            say(f"  round {i + 1}: vISP OpenVPN {runs['vispd']['mbps']} Mbit/s (cpu {runs['vispd']['cpu']}), "
                f"plain {runs['plain']['mbps']} Mbit/s (cpu {runs['plain']['cpu']}), "
                f"ratio {raw['pair_ratio'][-1]}; vISP OpenVPN to the point's own sliver {runs['own']['mbps']} Mbit/s "
                f"(cpu {runs['own']['cpu']})")
        clients.openvpn_disconnect()
        plain.disconnect()
        plain_target.stop()
        own.stop()
        self._openvpn_summary()

    def _openvpn_summary(self) -> None:
        raw = self.raw
        vpn = median([r["mbps"] for r in raw["openvpn"]])
        plain_mbps = median([r["mbps"] for r in raw["plain_openvpn"]])
        own_mbps = median([r["mbps"] for r in raw["openvpn_own_sliver"]])
        per_gbit = {key: median([r["cpu"]["server"] / (r["mbps"] / 1000) for r in raw[key] if r["mbps"]])
                    for key in ("openvpn", "plain_openvpn", "openvpn_own_sliver")}
        say(f"OpenVPN: vISP {vpn} Mbit/s, plain pair {plain_mbps} Mbit/s, ratio {ratio(vpn, plain_mbps)} "
            f"(median of pair ratios {median(raw['pair_ratio'])}); to the point's own sliver {own_mbps} Mbit/s "
            f"(ratio {ratio(own_mbps, plain_mbps)})")
        say(f"OpenVPN server CPU (cores per Gbit/s, median): {per_gbit}")
        self.result.update({
            "openvpn_vs_plain_ratio": ratio(vpn, plain_mbps),
            "openvpn_vs_plain_pair_ratio_median": median(raw["pair_ratio"]),
            "openvpn_mbps": vpn, "plain_openvpn_mbps": plain_mbps,
            "openvpn_own_sliver_mbps": own_mbps, "openvpn_own_sliver_vs_plain_ratio": ratio(own_mbps, plain_mbps),
            "openvpn_server_cores_per_gbit": per_gbit})

    def sliver_path(self) -> None:
        """Context: the vISP path itself, sliver to sliver, no tunnel."""
        self.raw["sliver_path"] = [measure(self.sliver[OPENVPN_NODE], self.loopbacks[OPENVPN_NODE], self.target,
                                           self.args.seconds, {})["mbps"] for _ in range(min(3, self.args.runs))]
        say(f"no tunnel, {SLICE}@{OPENVPN_NODE} -> {SLICE}@{OPENVPN_TARGET}: {median(self.raw['sliver_path'])} "
            f"Mbit/s (slice bandwidth {self.slice_bandwidth})")

    def wireguard_throughput(self) -> None:
        clients = self.clients
        wg_address = clients.wireguard_connect()[0].split("/")[0]
        wg_target = self.server(self.sliver[WIREGUARD_TARGET], self.loopbacks[WIREGUARD_TARGET])
        supervisor = _pid_file(self.name, f"wireguard-{SLICE}-{WIREGUARD_NODE}")
        wg_server_pid = next(iter(children_of(supervisor)), supervisor) if supervisor else None
        self.raw["wireguard"] = [measure(clients.wg_ns, wg_address, wg_target, self.args.seconds,
                                         {"client": clients.wg.pid, "server": wg_server_pid})
                                 for _ in range(self.args.other_runs)]
        clients.wireguard_disconnect()
        wg_target.stop()
        self.result["wireguard_mbps"] = median([r["mbps"] for r in self.raw["wireguard"]])
        say(f"WireGuard: {self.result['wireguard_mbps']} Mbit/s ({[r['mbps'] for r in self.raw['wireguard']]})")

    def summary(self) -> None:
        raw = self.raw
        self.result.update({
            "openvpn_connect_s": median(raw["openvpn_connect"]),
            "openvpn_address_s": median(raw["openvpn_address_s"]),
            "plain_openvpn_connect_s": median(raw["plain_openvpn_connect"]),
            "wireguard_connect_s": median(raw["wireguard_connect"]),
            "sliver_path_mbps": median(raw["sliver_path"]),
        })
        self.result["goals"] = {"openvpn_vs_plain_ge_0.8": (self.result["openvpn_vs_plain_ratio"] or 0) >= 0.8,
                                "pptp_ge_100_mbps": (self.result["pptp_mbps"] or 0) >= 100}

    def failed(self, error: Exception) -> None:
        """Report what was measured so far, then the error and the clients' log tails."""
        self.result["error"] = f"{type(error).__name__}: {error}"
        say(f"FAILED: {self.result['error']}")
        for leaf in ("openvpn-client.log", "wireguard-client.log", "plain-client.log", "plain-server.log"):
            tail = self.procs.log(leaf, 800)
            if tail:
                say(f"--- {leaf} (tail)\n{tail}")

    def clean_up(self) -> None:
        for server in self.servers:
            server.stop()
        self.procs.stop_all()
        if self.was_up or os.path.isdir(os.path.join(os.environ["VISPD_STATE_DIR"], self.name)):
            down = vispd("down", self.path, check=False)
            if down.returncode != 0:
                say(f"vispd down failed: {down.stdout}{down.stderr}")
        self.plain.destroy()
        left = [n for n in os.listdir("/run/netns") if n.startswith((f"vispd.{self.name}.", f"vbx-{self.tag}-"))]
        if left:
            say(f"left behind: {left}")
        shutil.rmtree(self.work, ignore_errors=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        say("bench/access.py needs root (network namespaces)")
        return 2
    began, load_before = time.monotonic(), os.getloadavg()
    bench = AccessBench(args)
    try:
        bench.build()
        bench.connect_times()
        bench.openvpn_throughput()
        bench.sliver_path()
        bench.wireguard_throughput()
        bench.result.update(_pptp(bench.work, bench.procs, bench.sliver, bench.clients, bench.pool,
                                  bench.slice_prefix, bench.loopbacks, bench.target, args, bench.tag, bench.raw))
        bench.summary()
    except Exception as error:
        bench.failed(error)
    finally:
        bench.clean_up()
    result = bench.result
    for key in ("openvpn_vs_plain_ratio", "wireguard_mbps", "pptp_mbps", "openvpn_connect_s", "openvpn_mbps",
                "plain_openvpn_mbps", "wireguard_connect_s"):
        result.setdefault(key, None)
    result["runtime_s"] = round(time.monotonic() - began, 1)
    result["loadavg_1m"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2),
                            "cpus": os.cpu_count()}
    result["runs"] = bench.raw
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 1 if "error" in result else 0


def _pid_file(name: str, daemon: str) -> int | None:
    try:
        with open(os.path.join(os.environ["VISPD_STATE_DIR"], name, "run", f"{daemon}.pid")) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pptp(work, procs, sliver, clients, pool, slice_prefix, loopbacks, target, args, tag, raw) -> dict:
    """PPTP connect times and throughput, or pptp_mbps null with the reason."""
    out = {"pptp_mbps": None, "pptp_connect_s": None,
           "pptp_setup": "pptpd + access.pptp engine started by the bench in plb@new-york's sliver on the OpenVPN "
                         "point's public address (vispd up does not build pptp access yet); unencrypted, no MPPE"}
    point = PptpPoint(work, procs, sliver[OPENVPN_NODE], clients.ovpn_ns, clients.public_address,
                      str(_network(pool)), tag)
    raw["pptp_connect"], raw["pptp"] = [], []
    try:
        point.start_server(slice_prefix)
        for _ in range(min(3, args.connects)):
            start = time.monotonic()
            point.connect()
            point.first_ping(loopbacks[OPENVPN_NODE])
            raw["pptp_connect"].append(round(time.monotonic() - start, 4))
            point.disconnect()
        point.connect()
        address = point.client_address()
        pids = {"client_engine": point.client.pid}
        for _ in range(args.pptp_runs):
            raw["pptp"].append(measure(clients.ovpn_ns, address, target, args.seconds, pids))
        out["pptp_connect_s"] = median(raw["pptp_connect"])
        out["pptp_mbps"] = median([r["mbps"] for r in raw["pptp"]])
        say(f"PPTP: connect {out['pptp_connect_s']} s, {out['pptp_mbps']} Mbit/s "
            f"({[r['mbps'] for r in raw['pptp']]}, retransmits {[r['retransmits'] for r in raw['pptp']]})")
    except Exception as error:
        out["pptp_error"] = f"{type(error).__name__}: {error}"
        out["pptp_partial"] = {"connect": raw["pptp_connect"], "runs": raw["pptp"]}
        out["pptp_mbps"] = None
        say(f"PPTP failed: {out['pptp_error']}\n{procs.log('pptp-client.log', 600)}"
            f"{procs.log(os.path.join('pptp', 'client-engine.log'), 600)}")
    finally:
        try:
            point.stop()
        except Exception as error:
            say(f"PPTP stop: {error}")
    return out


def _network(interface: str):
    return ipaddress.IPv4Interface(interface).network


if __name__ == "__main__":
    sys.exit(main())
