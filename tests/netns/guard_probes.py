"""Probes for the guard tests on bench/guardline.py's line: sniffers in slivers, the real
`dataplane.probe spray` as a slice's unprivileged user (what `vispd check` runs), a
hostile sliver's raw frames, HTB class counters and iperf3 runs bounded in time."""
from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import time

from dataplane import netns
from dataplane.probe import ip_checksum

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_ALLMULTI, PACKET_OUTGOING = 263, 1, 2, 4
SO_RCVBUFFORCE = 33
PROBE_PYTHON = "/usr/bin/python3"  # the slice user cannot run root's pyenv python; the probe needs only the stdlib
SLICE_UID = 61234


class Sniffer:
    """An AF_PACKET socket opened in a sliver (every device, all multicast admitted)."""

    def __init__(self, ns: str):
        self.ns = ns
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)  # hold a whole flood
            for index, name in socket.if_nameindex():
                if name != "lo":
                    mreq = struct.pack("iHH8s", index, PACKET_MR_ALLMULTI, 0, b"")
                    self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        self.sock.setblocking(False)

    def tags(self, marker: str) -> list[dict]:
        """Every received frame carrying `marker`: its device, MACs and the tag's fields."""
        found = []
        while True:
            try:
                frame, address = self.sock.recvfrom(65535)
            except BlockingIOError:
                return found
            at = frame.find(marker.encode())
            if address[2] == PACKET_OUTGOING or at < 0:
                continue
            fields = frame[at:].split(b"\n", 1)[0].decode(errors="replace").split("|")
            found.append({"if": address[0], "dst": frame[0:6].hex(":"), "src": frame[6:12].hex(":"),
                          "kind": fields[1], "slice": fields[2], "node": fields[3], "detail": fields[4]})

    def close(self) -> None:
        self.sock.close()


def spray(ns: str, marker: str, slice_name: str, node: str, unicast: list[str],
          controls: list[str]) -> subprocess.Popen:
    """`python3 -m dataplane.probe spray` in a sliver, as an unprivileged user."""
    argv = ["nsenter", f"--net={netns.path(ns)}", "--", "setpriv", f"--reuid={SLICE_UID}",
            f"--regid={SLICE_UID}", "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--",
            PROBE_PYTHON, "-m", "dataplane.probe", "spray", "--marker", marker, "--slice", slice_name,
            "--node", node, "--unicast", ",".join(unicast), "--controls", ",".join(controls)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def finish(proc: subprocess.Popen, timeout: float = 20) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return json.loads(out)


def udp_frame(dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, data: bytes) -> bytes:
    udp = struct.pack("!HHHH", 33434, 33434, 8 + len(data), 0) + data
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 8, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) \
        + struct.pack("!H", ETH_P_IP) + header + udp


def send_raw(ns: str, ifname: str, frames: list[bytes]) -> int:
    """Write frames as they are onto a device of a sliver (root there: AF_PACKET)."""
    with netns.entered(ns):
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((ifname, 0))
            return sum(1 for frame in frames if sock.send(frame) == len(frame))


def class_packets(ns: str, ifname: str) -> dict[int, int]:
    """HTB class minor -> packets sent, on a device."""
    out = subprocess.run(["tc", "-n", ns, "-s", "class", "show", "dev", ifname],
                         capture_output=True, text=True, check=True).stdout
    counts = {}
    for block in out.split("\n\n"):
        head = re.search(r"class htb 1:([0-9a-f]+) ", block)
        sent = re.search(r"Sent \d+ bytes (\d+) pkt", block)
        if head and sent:
            counts[int(head.group(1), 16)] = int(sent.group(1))
    return counts


def send_udp(ns: str, src: str, dst: str, count: int, marker: str) -> None:
    """`count` datagrams from a sliver's address (root in the sliver, an ordinary socket)."""
    with netns.entered(ns):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((src, 0))
            for i in range(count):
                sock.sendto(f"{marker}|count|x|x|{i}\n".encode(), (dst, 33434))


class Iperf:
    """iperf3 servers and bounded clients in slivers; everything stopped by PID."""

    PORT = 15282

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def server(self, ns: str, address: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s", "-p", str(self.PORT), "-B", address],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{self.PORT}"],
                                 capture_output=True, text=True).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"iperf3 server in {ns} did not start")

    def client(self, ns: str, src: str, dst: str, seconds: int, udp_rate: str | None = None) -> subprocess.Popen:
        argv = ["ip", "netns", "exec", ns, "iperf3", "-c", dst, "-B", src, "-p", str(self.PORT),
                "-t", str(seconds), "-J"]
        if udp_rate:
            argv += ["-u", "-b", udp_rate]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    def mbps(proc: subprocess.Popen, timeout: float) -> float:
        out, _ = proc.communicate(timeout=timeout)
        report = json.loads(out)
        assert "error" not in report, report.get("error")
        summary = report["end"].get("sum_received") or report["end"]["sum"]
        return summary["bits_per_second"] / 1e6

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.procs.clear()
