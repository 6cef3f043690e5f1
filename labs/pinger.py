"""A timed ICMP echo prober, run inside a lab host by labs/lablib.py's `Pinger`.

    python3 labs/pinger.py DST INTERVAL

Sends an echo request to DST every INTERVAL seconds on a fixed schedule (start + k x
INTERVAL, so a late wake-up does not shift the ones after it) from a raw socket, and
prints one line per event, flushed at once, with `time.monotonic()` times (the clock is
the machine's, shared by every network namespace, so the caller compares them with its
own readings directly):

    S SEQ SENT                   request SEQ sent
    E SEQ SENT ERRNO             request SEQ could not be sent (e.g. no route): lost
    R SEQ RECEIVED TTL           the reply to SEQ arrived with this IP TTL

Unlike `ping -D`, whose timestamps are taken when a reply is *printed* (late when ping
waits for the CPU) and which does not say when each request left, every time here is taken
at the event itself. The caller runs it with real-time priority (`chrt -f`), so that
neither schedule nor timestamps depend on the load of the machine. Stops on SIGINT/SIGTERM.

I/O: raw ICMP sockets in the lab host it runs in.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dataplane.probe import ip_checksum  # noqa: E402  (the repository, stdlib only)


def echo(ident: int, seq: int) -> bytes:
    payload = struct.pack("!Q", seq) + b"vispd-lab-probe!" * 2
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
    return struct.pack("!BBHHH", 8, 0, ip_checksum(header + payload), ident, seq & 0xFFFF) + payload


def main() -> int:
    dst, interval = sys.argv[1], float(sys.argv[2])
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out = sys.stdout
    lock = threading.Lock()
    stop = threading.Event()

    def emit(line: str) -> None:
        with lock:
            out.write(line + "\n")
            out.flush()

    def receive() -> None:
        while not stop.is_set():
            try:
                packet = sock.recv(2048)
            except OSError:
                return
            now = time.monotonic()
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 16:
                continue
            kind, _, _, pid, _ = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if kind != 0 or pid != ident:
                continue
            (seq,) = struct.unpack("!Q", packet[ihl + 8:ihl + 16])
            emit(f"R {seq} {now:.6f} {packet[8]}")

    def finish(*_):
        stop.set()

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    threading.Thread(target=receive, daemon=True).start()
    start = time.monotonic()
    seq = 0
    while not stop.is_set():
        target = start + seq * interval
        delay = target - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            if stop.is_set():
                break
        packet = echo(ident, seq)
        sent = time.monotonic()
        try:
            sock.sendto(packet, (dst, 0))
            emit(f"S {seq} {sent:.6f}")
        except OSError as exc:
            emit(f"E {seq} {sent:.6f} {exc.errno}")
        seq += 1
        behind = time.monotonic() - (start + seq * interval)
        if behind > 50 * interval:  # starved for long: skip the missed slots rather than burst
            seq_skip = int(behind / interval)
            start += seq_skip * interval
    time.sleep(min(0.2, 20 * interval))  # let the last replies in
    return 0


if __name__ == "__main__":
    sys.exit(main())
