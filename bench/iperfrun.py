"""iperf3 between two namespaces: a server kept for a series of runs, bounded client runs.

Every process is started through `ip netns exec` (which execs in place, so the PID we hold
is iperf3's own) and stopped by that PID. The client is pinned to CPU 0 and the server to
CPU 1 (`-A`), so on a two-core machine the sender, and the kernel forwarding that runs in
its softirq context, share one core while the receiver has the other, on both paths alike.

I/O: iperf3 processes in namespaces, stopped by PID.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

PORT = 15281  # ours; each path has its own namespaces, so no clash with other agents


class Server:
    def __init__(self, ns: str, address: str, port: int = PORT):
        self.ns, self.address, self.port = ns, address, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "iperf3", "-s", "-p", str(self.port),
             "-B", self.address, "-A", "1", "-J"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.ns, self.port, self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_listening(ns: str, port: int, proc: subprocess.Popen, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"iperf3 server in {ns} exited with {proc.returncode}")
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"iperf3 server in {ns} is not listening on {port}")


def client(ns: str, source: str, server: Server, seconds: int, udp: bool) -> dict:
    argv = ["ip", "netns", "exec", ns, "iperf3", "-c", server.address, "-p", str(server.port),
            "-B", source, "-t", str(seconds), "-A", "0", "-J"]
    if udp:
        argv += ["-u", "-l", "64", "-b", "0", "--get-server-output"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"iperf3 client in {ns} did not finish") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.kill()
    report = json.loads(out)
    if "error" in report:
        raise RuntimeError(f"iperf3 in {ns}: {report['error']}")
    return report


def tcp_mbps(report: dict) -> float:
    """Receiver-side TCP throughput, Mbit/s."""
    return report["end"]["sum_received"]["bits_per_second"] / 1e6


def udp_received_pps(report: dict) -> float:
    """Datagrams per second that reached the server (from the server's own report)."""
    server = report["server_output_json"]["end"]["sum"]
    received = server["packets"] - server["lost_packets"]
    return received / server["seconds"]


def udp_sent_pps(report: dict) -> float:
    client_sum = report["end"]["sum"]
    return client_sum["packets"] / client_sum["seconds"]


def ksoftirqd_pids() -> list[int]:
    """The kernel's softirq threads, which forward packets when the sender's context does not."""
    pids = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and open(f"/proc/{entry}/comm").read().startswith("ksoftirqd/"):
                pids.append(int(entry))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds(report: dict, udp: bool) -> float:
    """CPU seconds the client used in a run, as iperf3 reports it (softirq forwarding done
    in its context included)."""
    duration = report["end"]["sum" if udp else "sum_sent"]["seconds"]
    return report["end"]["cpu_utilization_percent"]["host_total"] / 100 * duration
