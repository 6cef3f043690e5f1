#!/usr/bin/env python3
"""Delay line benchmark (issue 13). Run as root:

    python3 bench/delay.py [--quick] [--rounds 3] [--rates 100000,150000,...]

On a path a -- r -- b (bench/delaypath.py; r forwards, namespaces hd-TAG-*):

1. RTT. The delay line on r holds both directions 37 ms (`-i r-a` and `-i r-b`, two
   queues, one process with a config of two links), so a's pings to b should answer in 74 ms (VINI's Washington-
   Seattle figure). `ping -i 0.01` (iputils: kernel receive timestamps) for `--ping-seconds`
   per round, with and without a TCP cross flow (iperf3 a -> b over the same delay line),
   rounds interleaved. `rtt_within_1ms_fraction` is the median over the loaded rounds of
   the fraction of pings answered within 1 ms of 74 ms (a lost ping counts as outside);
   `rtt_within_1ms_fraction_idle` likewise without the flow. Each round has a fresh delay
   process, whose count of releases more than 1 ms late is printed: a miss with no late
   release was not the delay line's wake-up (the sender's or the kernel's side).
2. Packet rate. The delay line holds one direction (a -> b, 37 ms, one queue). The sender
   is bench/udpblast.py in packet mode (prebuilt 64-byte-payload UDP frames through an
   AF_PACKET socket with sendmmsg: ~420k packets/s from one core here, where iperf3 tops
   out near 180k), pinned to CPU 0; the delay process is pinned to CPU 1. b drops the
   datagrams in an nftables counter rule (no receiving process to be the limit). For each
   rate (ascending, `--reps` times each, interleaved) the bench records the rate the
   sender achieved, the packets b received (after waiting out the delay) and the delay
   process's CPU time (/proc/PID/schedstat: user + kernel, which includes re-injecting the
   packets and forwarding them to b). `delayed_link_pps` is the highest median received
   rate over the target rates below the first one that lost packets; `pps_bound_by` says
   what bounded it: "line" (a higher rate lost packets), "sender" (nothing was lost but
   the sender fell short of the highest target: a lower bound) or "rates" (every target
   went through).
   `delay_cpu_per_100k_pps`: median over the loss-free steps of cores used per 100k
   packets/s.

Everything is removed at the end (processes by PID, the hd-TAG-* namespaces). The last line
printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO  # as a script, bench/ would come first and shadow nothing useful

from bench.delaypath import B_ADDR, DelayPath, DelayLineProcess  # noqa: E402
from dataplane import nfqueue  # noqa: E402
from dataplane.delayconfig import LineConfig, LinkDelay, render_config  # noqa: E402
from model.linkprops import parse_duration_us  # noqa: E402

ONE_WAY = "37ms"
TARGET_RTT_MS = 74.0
TOLERANCE_MS = 1.0
IPERF_PORT = 15213
SINK_PORT = 9


def ping_rtts(path: DelayPath, seconds: float, interval: float = 0.01) -> tuple[list[float], int]:
    """(RTTs in ms, requests sent) of a ping a -> b."""
    count = int(seconds / interval)
    out = path.exec(path.a, ["ping", "-n", "-i", str(interval), "-c", str(count), "-W", "1", B_ADDR],
                    timeout=seconds + 30).stdout
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)], count


def within_fraction(rtts: list[float], sent: int, target_ms: float, tolerance_ms: float = TOLERANCE_MS) -> float:
    return sum(abs(r - target_ms) <= tolerance_ms for r in rtts) / sent if sent else 0.0


def start_iperf_server(path: DelayPath) -> None:
    path.popen(path.b, ["iperf3", "-s", "-p", str(IPERF_PORT), "-B", B_ADDR],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if f":{IPERF_PORT}" in path.exec(path.b, ["ss", "-Htln"]).stdout:
            return
        time.sleep(0.05)
    raise RuntimeError("iperf3 server did not start")


def cross_flow(path: DelayPath, seconds: float) -> subprocess.Popen:
    return path.popen(path.a, ["iperf3", "-c", B_ADDR, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def flow_mbps(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate(timeout=60)
    try:
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        return 0.0


def both_directions_config() -> LineConfig:
    """One process, two links: what arrives on r-a (a -> b) and on r-b (b -> a)."""
    delay = parse_duration_us(ONE_WAY)
    return LineConfig(links=(LinkDelay(queues=(0,), delay_us=delay, device="r-a"),
                             LinkDelay(queues=(1,), delay_us=delay, device="r-b")), owner="bench")


def config_file(path: DelayPath) -> str:
    return f"/tmp/{path.r}.delayline.json"


def write_config(path: DelayPath, config: LineConfig) -> str:
    name = config_file(path)
    with open(name, "w") as handle:
        handle.write(render_config(config))
    return name


def rtt_round(path: DelayPath, seconds: float, loaded: bool) -> dict:
    flow = cross_flow(path, seconds + 2) if loaded else None
    if flow:
        time.sleep(1.0)  # past slow start
    rtts, sent = ping_rtts(path, seconds)
    mbps = flow_mbps(flow) if flow else 0.0
    return {"loaded": loaded, "sent": sent, "answered": len(rtts),
            "within_1ms": within_fraction(rtts, sent, TARGET_RTT_MS),
            "median_ms": statistics.median(rtts) if rtts else None,
            "p1_ms": sorted(rtts)[len(rtts) // 100] if rtts else None,
            "p99_ms": sorted(rtts)[len(rtts) * 99 // 100] if rtts else None, "cross_mbps": mbps}


def measure_rtt(path: DelayPath, rounds: int, seconds: float) -> list[dict]:
    """Rounds of pings, loaded and idle interleaved; a fresh delay process per round, so its
    own count of late releases (> 1 ms after due) tells whether a miss was its wake-up."""
    start_iperf_server(path)
    config = write_config(path, both_directions_config())
    results = []
    for index in range(rounds):
        for loaded in ((True, False) if index % 2 == 0 else (False, True)):
            line = path.delay_line("--config", config)
            try:
                result = rtt_round(path, seconds, loaded)
            finally:
                path.stop_line(line)
            result["late_releases"] = sum(s["late_releases"] for s in line.stats)
            result["releases"] = sum(s["releases"] for s in line.stats)
            print(f"rtt round {index} {'cross' if loaded else 'idle '}: "
                  f"{result['within_1ms']:.4f} within 1 ms, median {result['median_ms']} ms, "
                  f"p1 {result['p1_ms']} p99 {result['p99_ms']}, cross {result['cross_mbps']:.0f} Mbit/s, "
                  f"{result['late_releases']} of {result['releases']} releases late", flush=True)
            results.append(result)
    return results


def sink_count(path: DelayPath) -> int:
    out = path.exec(path.b, ["nft", "-j", "list", "chain", "ip", "hdsink", "pre"]).stdout
    for item in json.loads(out)["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return expr["counter"]["packets"]
    raise RuntimeError("no counter in b's sink chain")


def install_sink(path: DelayPath) -> None:
    script = ("add table ip hdsink\nadd chain ip hdsink pre { type filter hook prerouting priority -300; }\n"
              f"add rule ip hdsink pre udp dport {SINK_PORT} counter drop\n")
    subprocess.run(["ip", "netns", "exec", path.b, "nft", "-f", "-"], input=script, text=True, check=True)


def cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as handle:
        return int(handle.read().split()[0])


def mac_of(path: DelayPath, ns: str, device: str) -> str:
    return json.loads(path.exec(ns, ["ip", "-j", "link", "show", device]).stdout)[0]["address"]


def queue_drops(path: DelayPath) -> int:
    """Packets r's queues dropped (queue full, or the reader's socket buffer full)."""
    out = path.exec(path.r, ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout
    return sum(q["queue_dropped"] + q["user_dropped"] for q in nfqueue.parse_queue_stats(out))


def pps_step(path: DelayPath, line: DelayLineProcess, rate: int, seconds: float, dst_mac: str) -> dict:
    before, cpu_before, wall_before = sink_count(path), cpu_ns(line.pid), time.monotonic()
    drops_before = queue_drops(path)
    out = path.exec(path.a, ["taskset", "-c", "0", sys.executable, "-m", "bench.udpblast", "--dst", B_ADDR,
                             "--rate", str(rate), "--seconds", str(seconds), "--packet", "a-r",
                             "--dst-mac", dst_mac, "--port", str(SINK_PORT)])
    if out.returncode != 0:
        raise RuntimeError(f"sender failed: {out.stderr.strip()}")
    sent = json.loads(out.stdout)
    time.sleep(0.037 + 0.3)  # the last packets are still on the line
    received = sink_count(path) - before
    wall = time.monotonic() - wall_before
    cores = (cpu_ns(line.pid) - cpu_before) / 1e9 / wall
    return {"target": rate, "sent_rate": sent["rate"], "sent": sent["sent"], "received": received,
            "lost": sent["sent"] - received, "queue_drops": queue_drops(path) - drops_before, "received_rate": received / sent["seconds"],
            "delay_cores": cores, "cores_per_100k": cores / (received / wall / 1e5) if received else None}


def measure_pps(path: DelayPath, rates: list[int], reps: int, seconds: float) -> list[dict]:
    install_sink(path)
    dst_mac = mac_of(path, path.r, "r-a")
    line = path.delay_line("--queue", "0", "--delay", ONE_WAY, "--device", "r-a")
    subprocess.run(["taskset", "-pc", "1", str(line.pid)], capture_output=True, check=True)
    steps = []
    try:
        for rep in range(reps):
            for rate in rates:
                step = pps_step(path, line, rate, seconds, dst_mac)
                step["rep"] = rep
                print(f"pps rep {rep} target {rate}: sent {step['sent_rate']:.0f}/s, lost {step['lost']}, "
                      f"delay process {step['delay_cores']:.2f} cores", flush=True)
                steps.append(step)
    finally:
        line.stop()
    return steps



def summarise_pps(steps: list[dict]) -> dict:
    """The highest rate carried without loss (median received rate per target rate, over
    the targets up to the first whose median run lost packets) and what bounded it: "line"
    (a higher target lost packets), "sender" (no loss, but the sender fell short of the
    highest target: a lower bound) or "rates" (every target went through)."""
    by_target: dict[int, list[dict]] = {}
    for step in steps:
        by_target.setdefault(step["target"], []).append(step)
    carried, cpu, bound_by = [], [], "rates"
    for target in sorted(by_target):
        group = by_target[target]
        if statistics.median(s["lost"] for s in group) > 0:
            bound_by = "line"
            break
        carried.append(statistics.median(s["received_rate"] for s in group))
        cpu += [s["cores_per_100k"] for s in group if s["cores_per_100k"] is not None]
    if bound_by == "rates" and carried and carried[-1] < 0.98 * max(by_target):
        bound_by = "sender"
    return {"delayed_link_pps": max(carried) if carried else 0.0, "pps_bound_by": bound_by,
            "delay_cpu_per_100k_pps": statistics.median(cpu) if cpu else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, one run, a few seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ping-seconds", type=float, default=15.0)
    parser.add_argument("--rates", default="100000,150000,200000,250000,300000,350000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pps-seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.ping_seconds, args.rates, args.reps, args.pps_seconds = 1, 2.0, "50000", 1, 1.0
    rates = [int(r) for r in args.rates.split(",")]
    with DelayPath() as path:
        try:
            rtt = measure_rtt(path, args.rounds, args.ping_seconds)
            steps = measure_pps(path, rates, args.reps, args.pps_seconds)
        finally:
            if os.path.exists(config_file(path)):
                os.unlink(config_file(path))
    loaded = [r for r in rtt if r["loaded"]]
    idle = [r for r in rtt if not r["loaded"]]
    figures = {
        "rtt_within_1ms_fraction": statistics.median(r["within_1ms"] for r in loaded),
        "rtt_within_1ms_fraction_idle": statistics.median(r["within_1ms"] for r in idle),
        "rtt_target_ms": TARGET_RTT_MS,
        "rtt_median_ms": statistics.median(r["median_ms"] for r in loaded if r["median_ms"]),
        "cross_traffic_mbps": statistics.median(r["cross_mbps"] for r in loaded),
        "pings_per_round": loaded[0]["sent"],
        "rounds": args.rounds,
        **summarise_pps(steps),
        "pps_steps": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in steps],
        "quick": args.quick,
    }
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
