#!/usr/bin/env python3
"""vispd BGP egress benchmark through the border router (issues 3 and 11, "Benchmark"). Root:

    python3 bench/bgp.py [--quick] [--failovers 5] [--runs 7] [--sizes 10k,100k,100k_varied[,1m,1m_varied]]
                         [--runs-1m 1] [--prefix hb]

Everything runs against real daemons: `vispd up` (the CLI, with a private VISPD_STATE_DIR),
the lab's BIRD providers, and the vISP's BGP as vispd builds it: at each egress node a
border router (ExaBGP + vispd's helper in the node's namespace, one eBGP session per
provider, bgp/border.py) and, in each egressing sliver, the slice's speaker (ExaBGP +
helper, bgp/speaker.py), which peers with the border over iBGP and gets each provider's
routes on an ADD-PATH path of its own.

1. Up. Topology `hbline`: nodes a - b - c in a line (b - c costs more, so b's nearest
   egress is a), slice `s` everywhere, provider p1 at a and p2 at c. The clock starts when
   `vispd up` is started. Established = the latest `since` of the borders' provider
   sessions and of the slices' sessions to the borders (the helpers' status files). First
   packet = the first ICMP echo reply from 203.0.113.10 to the non-egress sliver b (a raw
   socket opened as root inside b's namespace as soon as it exists, an echo every 5 ms).
2. Failover. The same probe keeps running from b (an echo every 5 ms). Packet taps
   (AF_PACKET sockets on each provider's device facing the vISP) note which provider
   every echo request passed through, so every reply is attributed to a path. One run:
   wait until the replies of the last 200 ms all went via p1; t0; `birdc disable vispd` at
   p1 (the provider's one session with the vISP: the border's at a); failover = first reply
   (after t0) to a request seen at p2 - t0. Taps on the Internet router's devices toward p1
   and p2 show which way the replies came back. Then `birdc enable vispd` and wait until
   the requests go via p1 again (moveback, from the enable). Median over `--failovers`.
3. Ingestion (bench/bgpingest.py), for N = 10k and 100k (and 1M with `--sizes 1m,1m_varied`,
   when memory allows: through the border 1M takes 20-50 s per load and 300-700 MiB per
   ExaBGP + helper pair), three receivers side by side, rounds
   rotating which goes first (medians over `--runs`, `--runs-1m` at 1M):
   * border: a one-node topology `hbingN` whose provider p1 originates N generated
     prefixes (`lab-routes`) and two slices, s1 and s2, both egressing through p1 there.
     The provider's session to the border is bounced (`birdc disable/enable vispd`);
     time = from that session's Established until EVERY egressing slice's FIB holds the N
     prefixes (+ the provider's Internet route): provider -> border ExaBGP -> border
     helper -> border ExaBGP -> (x2) slice ExaBGP -> slice helper -> netlink.
     `border_ingest_routes_per_s_N` = N / that time.
   * bird: our own namespaces hb-PID-N-snd/-rcv (bench/bgpsides.py): a BIRD sender
     originating the same N prefixes (the same generator) and a BIRD receiver whose kernel
     protocol installs them (BIRD defaults otherwise, the lab providers' BGP timers). The
     `ingest_vs_bird_ratio_N` keys compare the border path (to every slice) with it: they
     now measure THROUGH the border router, where before this bench fed one slice's
     speaker directly.
   * direct: the same sender's second session, to a slice speaker started exactly as
     vispd starts one (same ExaBGP command line and environment, same helper) in
     hb-PID-N-spk, without a border: the path before issue 11. The extra hop's cost per
     route: `us_per_route_border_N` vs `us_per_route_direct_N` (time to 100% / N) and
     `border_vs_direct_ratio_N` (border time / direct time: > 1 is slower); the border's
     CPU per route (its ExaBGP and helper, /proc/PID/stat) is in `border_cpu_us_per_route_N`.
   Every side is measured the same way, after the sending BIRD has loaded its table:
   disable the session (when routes are installed) and wait until the receiving FIBs are
   back to their baselines (`withdraw_s`), then enable it; time = from the session's
   Established (the sending BIRD's `show protocols` Since, ms) until the FIBs hold all the
   routes (prefix count in /proc/net/fib_triestat of each namespace, polled, minus the
   baseline). The time from the enable command and the time to 99% of the routes (t99)
   are reported too. The headline BIRD ratio compares the rates over the first 99% of the
   routes; `ingest_vs_bird_ratio_N_all` to 100%. Why: between two BIRDs the last ~0.16%
   of the routes often arrive up to a keepalive interval (3 s) late (a BGP transfer effect
   between the BIRDs, not the kernel protocol); such runs are marked `tail_stall`.
   * kernel (bench/fibfloor.py): the same N prefixes inserted by vispd's netlink writer
     alone into a namespace of its own, once per round: what no receiver that installs into
     a Linux FIB beats here. `kernel_floor_s_N`; `bird_vs_kernel_floor_N`,
     `speaker_vs_kernel_floor_N`, `border_vs_kernel_floor_N`: each receiver's time over it.
     And the border path's floor: the same table into both slices' FIBs at once, a forked
     writer per namespace (as each slice's helper writes its own), `kernel_floor_fibs_s_N`
     (the kernel's route changes share one lock, so this is well above one FIB's time on
     2 cores); `border_vs_kernel_floor_fibs_N`; `ceiling_vs_bird_ratio_N` = BIRD's time to
     99% over it: the highest `ingest_vs_bird_ratio_N` (to 99%) any receiver could reach
     through the border on this machine.
   CPU seconds of every process involved during each run (/proc/PID/stat) show where the
   time goes (CPU µs per route in the JSON). Peak RSS (VmHWM) of each ExaBGP + helper pair
   after the runs; `rss_mib_N` is the largest pair (the border's or a slice's).
4. Everything is removed in a `finally`: `vispd down` for each hb* topology brought up,
   our BIRD and ExaBGP processes by PID, our hb-PID-* namespaces by name, then the
   temporary directory (unless --keep). The last line printed is one JSON object.

Two tables (issue 12): the packed one (`lab-routes`: one attribute set, so the sending BIRD
fills each UPDATE with hundreds of prefixes) and, for the sizes ending `_varied`, a
realistic one (bench/bgpvaried.py: the same prefixes, an attribute set per 3 of them: varied
AS paths with 2- and 4-byte ASNs, origins, communities, MEDs, so about 3 prefixes per
UPDATE), for every side alike: our BIRD sender originates it, and the border side's
provider gets it appended to its BIRD configuration after `up` (topology `hbingNv`, brought
up with `lab-routes: 0`; a `lab-routes-varied: true` provider field would do it in vispd).
Keys `..._N_varied`, e.g. `ingest_vs_bird_ratio_100k_varied`.

How each ratio is measured: at the border = the border side (provider -> border -> both
slices' FIBs, each slice's speaker installing); at a slice's speaker = the direct side
(`direct_routes_per_s_N` / `bird_routes_per_s_N`: the same speaker without a border).

`--quick`: topologies hbq*, one failover, one ingestion round of 1,000 prefixes of each
table: a minute at most, so that tests/netns/test_bench_bgp.py can keep this bench from
rotting. `--prefix` names the topologies and namespaces (default hb; a developer's run
takes their own).

I/O (root): topologies, BIRD/ExaBGP lab and probers of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

# Run as a script, Python puts bench/ first on sys.path, where bench/ modules could shadow
# the repository's packages: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO

from measure import rounded, say  # noqa: E402
from measure.pathprobe import PathProbe  # noqa: E402

from bench.bgpingest import SESSION, VARIED, ingest_one, size_keys, hop_keys  # noqa: E402
from bench.bgpkit import (Cleanup, Vispd, birdc, mem_available, median, protocol_since, provider_sock,  # noqa: E402
                          refuse_leftovers, wait_for, write)
from compiler.providers.emulated import INTERNET, internet_device  # noqa: E402
from dataplane import netns  # noqa: E402
from model.naming import lab_ns, sliver_ns, substrate_ifname  # noqa: E402

SLICE = "s"                      # the line topology's slice
INTERNET_HOST = "203.0.113.10"
PROBE_INTERVAL = 0.005
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "100k_varied": 100_000, "1m_varied": 1_000_000}
DEFAULT_SIZES = "10k,100k,100k_varied"
QUICK_SIZES = {"1k": 1_000, "1k_varied": 1_000}
ONE_M_NEEDS = 8 << 30            # bytes of MemAvailable we want before trying 1M prefixes


def line_topology(name: str) -> str:
    return f"""\
# bench/bgp.py: a - b - c, egress at both ends; b's nearest egress is a (cost 1 vs 2).
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes:
  - {{name: a, site: a}}
  - {{name: b, site: b}}
  - {{name: c, site: c}}
links:
  - {{between: [a, b], bandwidth: 10G, cost: 1}}
  - {{between: [b, c], bandwidth: 10G, cost: 2}}
providers:
  - {{name: p1, node: a, asn: 65101, bandwidth: 10G, peering: 192.0.2.0/28, max-prefix: 1000}}
  - {{name: p2, node: c, asn: 65102, bandwidth: 10G, peering: 192.0.2.16/28, max-prefix: 1000}}
slices:
  - {{name: {SLICE}, prefix: 198.18.0.0/22, nodes: all, links: all, bandwidth: 1G, egress: [p1, p2]}}
"""


def sessions_up(vispd: Vispd, topology: str, egress: dict[str, str]) -> bool:
    """Every border's provider session and every slice's session to its border are up."""
    for node, provider in egress.items():
        if vispd.border_neighbor(topology, node, provider).get("state") != "up":
            return False
        if vispd.border_neighbor(topology, node, f"slice {SLICE}").get("state") != "up":
            return False
        if vispd.to_border(topology, SLICE, node).get("state") != "up":
            return False
    return True


def sessions_since(vispd: Vispd, topology: str, egress: dict[str, str]) -> float:
    """The latest `since` of the sessions sessions_up() checks."""
    times = []
    for node, provider in egress.items():
        times.append(vispd.border_neighbor(topology, node, provider)["since"])
        times.append(vispd.to_border(topology, SLICE, node)["since"])
    return max(times)


def _up_with_prober(vispd: Vispd, line: str, path: str, cleanup: Cleanup) -> tuple[PathProbe, float, float, float]:
    """Start `vispd up` and a prober in b's sliver as soon as the sliver exists; returns
    (prober, wall-clock start, monotonic start, seconds `vispd up` took)."""
    b_ns = sliver_ns(line, "b", SLICE)
    wall0, t0 = time.time(), time.monotonic()
    proc = vispd.start("up", path)
    prober = None
    deadline = t0 + 60
    while prober is None and time.monotonic() < deadline:
        if netns.exists(b_ns):
            try:
                prober = PathProbe(b_ns, INTERNET_HOST, PROBE_INTERVAL)
            except OSError:   # the name exists, the namespace is not mounted yet
                prober = None
        if prober is None:
            if proc.poll() is not None and proc.returncode != 0:
                break
            time.sleep(0.002)
    if prober is None:
        out, err = proc.communicate(timeout=120)
        raise RuntimeError(f"sliver {b_ns} never appeared: {err.strip() or out.strip()}")
    cleanup.probers.append(prober)
    prober.start()
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"vispd up {line} failed: {err.strip() or out.strip()}")
    return prober, wall0, t0, time.monotonic() - t0


def _measure_up(vispd: Vispd, line: str, prober: PathProbe, egress: dict, wall0: float, t0: float, up_cli: float) -> dict:
    if not wait_for(lambda: sessions_up(vispd, line, egress), timeout=60):
        raise RuntimeError(f"sessions of {line} not Established: {vispd.border(line, 'a')} {vispd.border(line, 'c')}")
    established = sessions_since(vispd, line, egress) - wall0
    first = wait_for(lambda: prober.first_reply(), timeout=60, interval=0.005)
    first_packet = first - t0 if first else None
    # the lab's own sessions (provider <-> Internet router), which carry 203.0.113.0/24
    internet_up = {}
    for provider in egress.values():
        state, since = protocol_since(provider_sock(line, provider), "internet")
        internet_up[provider] = round(since - wall0, 3) if state == "up" and since else None
    say(f"up: `vispd up` returned after {up_cli:.3f} s; the borders' provider sessions and the slice's sessions "
        f"to the borders all Established at {established:.3f} s; first echo reply at b from {INTERNET_HOST} at "
        + (f"{first_packet:.3f} s" if first_packet else "never (60 s)")
        + f"; the lab providers' sessions to the Internet router were up at {internet_up} s")
    return {"up_cli_s": round(up_cli, 4), "up_to_established_s": round(established, 4),
            "up_to_first_packet_s": rounded(first_packet), "up_to_lab_internet_session_s": internet_up}


def _failover_once(prober: PathProbe, p1_sock: str) -> dict | None:
    """Disable p1's session with the vISP's border at p1's BIRD until traffic flows via p2,
    then enable it again."""
    if not wait_for(lambda: prober.only_via("p1"), timeout=30, interval=0.02):
        return None
    start = time.monotonic()
    replies_before = sorted(p for p in prober.recent_paths(0.2, start)[1] if p.startswith("back-"))
    birdc(p1_sock, "disable", SESSION)
    command_s = time.monotonic() - start
    switched = wait_for(lambda: prober.first_reply_via("p2", start), timeout=15, interval=0.002)
    run = {"command_s": round(command_s, 4), "replies_before": replies_before}
    if switched:
        run["failover_s"] = round(switched - start, 4)
        last_p1 = prober.last_reply_via("p1", switched, start)
        run["last_reply_via_p1_s"] = round(last_p1 - start, 4) if last_p1 else None
        run["lost"] = prober.lost_between(start - 0.05, switched)
    else:
        run["failover_s"] = None
    time.sleep(0.3)
    run["after_via"] = sorted(prober.recent_paths(0.2)[1])   # requests (p*) and replies (back-p*)
    enable = time.monotonic()
    birdc(p1_sock, "enable", SESSION)
    back = wait_for(lambda: prober.only_via("p1"), timeout=30, interval=0.01)
    first_back = prober.first_reply_via("p1", enable)
    run["moveback_s"] = round(first_back - enable, 4) if back and first_back else None
    return run


def measure_up_and_failover(vispd: Vispd, line: str, workdir: str, cleanup: Cleanup, failovers: int) -> dict:
    path = write(workdir, f"{line}.yaml", line_topology(line))
    egress = {"a": "p1", "c": "p2"}
    cleanup.topologies.append(line)
    prober, wall0, t0, up_cli = _up_with_prober(vispd, line, path, cleanup)
    result = _measure_up(vispd, line, prober, egress, wall0, t0, up_cli)
    prober.tap("p1", lab_ns(line, "p1"), substrate_ifname("a", "a"))
    prober.tap("p2", lab_ns(line, "p2"), substrate_ifname("c", "c"))
    for provider in ("p1", "p2"):   # the Internet router's device toward it
        prober.tap(f"back-{provider}", lab_ns(line, INTERNET), internet_device(provider), outgoing=True)
    runs = []
    for i in range(failovers):
        run = _failover_once(prober, provider_sock(line, "p1"))
        if run is None:
            say(f"  failover {i + 1}: traffic is not flowing via p1 only ({prober.recent_paths(0.2)}); skipped")
            continue
        runs.append(run)
        say(f"  failover {i + 1}/{failovers}: " + " ".join(f"{k}={v}" for k, v in run.items()))
        time.sleep(0.5)
    prober.stop()
    times = [r["failover_s"] for r in runs if r.get("failover_s") is not None]
    down_s = cleanup.down(line)
    say(f"failover: median {median(times)} s over {len(times)} runs; vispd down {line}: {down_s:.2f} s")
    return {**result, "failover_s": median(times), "failover_runs_s": times,
            "failover_max_s": max(times) if times else None, "failover_lost_probes": [r.get("lost") for r in runs],
            "failover_runs": runs, "failover_probe_interval_s": PROBE_INTERVAL,
            "moveback_s": median([r["moveback_s"] for r in runs if r.get("moveback_s") is not None]),
            "down_line_s": round(down_s, 3)}


# -- 3: route ingestion ---------------------------------------------------------------------------
# -- main ----------------------------------------------------------------------------------------------
def _sizes(args) -> tuple[dict, str | None]:
    if args.quick:
        return dict(QUICK_SIZES), None
    sizes = {label: SIZES[label] for label in args.sizes.split(",")}
    big = [label for label in sizes if label.startswith("1m")]
    skipped = None if big else "not in --sizes"
    if big:
        if args.no_1m:
            skipped = "--no-1m"
        elif mem_available() < ONE_M_NEEDS:
            skipped = f"MemAvailable {mem_available() >> 20} MiB < {ONE_M_NEEDS >> 20} MiB"
        if skipped:
            for label in big:
                sizes.pop(label)
    return sizes, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, one run of each: about a minute")
    parser.add_argument("--failovers", type=int, default=5, help="failover runs (median)")
    parser.add_argument("--runs", type=int, default=7, help="ingestion rounds for 10k and 100k")
    parser.add_argument("--runs-1m", type=int, default=1, help="ingestion rounds for 1M")
    parser.add_argument("--no-1m", action="store_true", help="skip the 1M-prefix ingestion even if --sizes has it")
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated sizes among {','.join(SIZES)} (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    parser.add_argument("--prefix", default="hb", help="name prefix of the bench's topologies and namespaces "
                        "(default %(default)s; a quick run adds q)")
    args = parser.parse_args(argv)
    unknown = set(args.sizes.split(",")) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}")
    if os.geteuid() != 0:
        sys.exit("run as root")
    started = time.monotonic()
    sizes, skipped_1m = _sizes(args)
    failovers, runs = (1, 1) if args.quick else (args.failovers, args.runs)
    prefix = args.prefix + ("q" if args.quick else "")   # a quick run (the test) does not clash with a full one
    line = f"{prefix}line"
    refuse_leftovers([line] + [f"{prefix}ing{label.replace(VARIED, 'v')}" for label in sizes])

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so that `finally` cleans up
    workdir = tempfile.mkdtemp(prefix="vispd-bench-bgp-")
    os.chmod(workdir, 0o755)
    vispd = Vispd(os.path.join(workdir, "state"))
    cleanup = Cleanup(vispd, workdir if args.keep else None)
    result: dict = {"quick": args.quick}
    try:
        say("== 1. up to Established / first packet, 2. failover (the provider's session with the border) ==")
        result.update(measure_up_and_failover(vispd, line, workdir, cleanup, failovers))
        say("== 3. route ingestion: through the border to 2 slices vs BIRD's kernel protocol vs a speaker without border ==")
        for label, routes in sizes.items():
            one = ingest_one(vispd, prefix, workdir, cleanup, label, routes,
                             args.runs_1m if label.startswith("1m") else runs)
            result.update(size_keys(label, one))
        result.update(hop_keys(result, sizes))
        if skipped_1m:
            result["rss_mib_1m"] = None
            result["ingest_1m_skipped"] = skipped_1m
    finally:
        cleanup.run()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["runtime_s"] = round(time.monotonic() - started, 1)
    result["goals"] = {
        "failover_le_1s": result.get("failover_s") is not None and result["failover_s"] <= 1.0,
        "ingest_ratio_100k_ge_1.2": (result.get("ingest_vs_bird_ratio_100k") or 0) >= 1.2,
        "ingest_ratio_100k_varied_ge_1.2": (result.get("ingest_vs_bird_ratio_100k_varied") or 0) >= 1.2,
        "ingest_ratio_1m_ge_1.2": (result.get("ingest_vs_bird_ratio_1m") or 0) >= 1.2,
        "rss_1m_le_2GiB": result.get("rss_mib_1m") is not None and result["rss_mib_1m"] <= 2048,
    }
    say(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
