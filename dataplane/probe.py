"""The data-path probes `vispd check` runs inside slivers (standard library only).

They run as the slice's unprivileged user (ping, spray) or as root on the operator's side
(sniff), under whatever python3 that user can execute, so nothing here imports from the
rest of vispd. Each prints JSON on stdout.

    python3 -m dataplane.probe ping  --targets A,B --timeout T
        ICMP echo (datagram sockets, as ping_group_range allows) to all targets at once.
    python3 -m dataplane.probe sniff --marker M --foreign-macs .. --foreign-ips .. --max-seconds T
        AF_PACKET capture on every interface (all multicast admitted); prints `ready`, then,
        when stdin closes, the frames that carry M or come from a foreign MAC or address.
    python3 -m dataplane.probe spray --marker M --slice S --node N --unicast .. --controls ..
        [--taps IF=SRC,..]   UDP unicast to the given addresses, broadcast and multicast
        out every interface, broadcast and multicast frames written into the TAPs, and
        control datagrams to the neighbours; every payload is `M|kind|S|N|detail`.

I/O: sockets in the sliver it runs in.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import socket
import struct
import sys
import time

IP_UNICAST_IF = 50  # Linux; unprivileged, unlike SO_BINDTODEVICE
PROBE_PORT = 47999
MULTICAST_GROUP = "224.0.0.5"  # OSPF's AllSPFRouters
MULTICAST_MAC = bytes.fromhex("01005e000005")
BROADCAST_MAC = b"\xff" * 6
TAP_CLIENT_MAC = bytes.fromhex("027669737064")  # the program behind the TAP ("vispd")
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_ALLMULTI = 263, 1, 2
PACKET_OUTGOING = 4
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0


def emit(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def csv(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


# --- ping --------------------------------------------------------------------------------

def echo_request(seq: int) -> bytes:
    # the kernel fills in the identifier and checksum of ICMP datagram sockets
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, 0, seq) + b"vispd-check"


def ping_all(targets: list[str], timeout: float, resend: float = 0.5) -> dict:
    """Echo every target concurrently, resending every `resend` s until a reply or `timeout`."""
    start = time.monotonic()
    results: dict[str, dict] = {}
    socks: dict[socket.socket, str] = {}
    for target in targets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        sock.setblocking(False)
        socks[sock] = target
    last_sent = {sock: -resend for sock in socks}
    pending = set(socks)
    while pending and time.monotonic() - start < timeout:
        now = time.monotonic()
        for sock in [s for s in pending if now - last_sent[s] >= resend]:
            last_sent[sock] = now
            try:
                sock.sendto(echo_request(int((now - start) / resend)), (socks[sock], 0))
            except OSError as exc:
                results[socks[sock]] = {"ok": False, "error": exc.strerror or str(exc)}
                pending.discard(sock)
        wait = max(0.0, min(resend, timeout - (time.monotonic() - start)))
        readable, _, _ = select.select(list(pending), [], [], wait) if pending else ([], [], [])
        for sock in readable:
            outcome = read_echo_reply(sock, start)
            if outcome is not None:
                results[socks[sock]] = outcome
                pending.discard(sock)
    for sock, target in socks.items():
        results.setdefault(target, {"ok": False, "error": "timeout"})
        sock.close()
    return {"results": results}


def read_echo_reply(sock: socket.socket, start: float) -> dict | None:
    try:
        data = sock.recv(2048)
    except BlockingIOError:
        return None
    except OSError as exc:  # an ICMP error reported on the socket
        return {"ok": False, "error": exc.strerror or str(exc)}
    if data and data[0] == ICMP_ECHO_REPLY:
        return {"ok": True, "rtt_ms": round((time.monotonic() - start) * 1000, 3)}
    return None


# --- sniff -------------------------------------------------------------------------------

def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_frame(frame: bytes, ifname: str, pkttype: int, marker: bytes) -> dict:
    record = {"if": ifname, "pkttype": pkttype, "dst_mac": mac_text(frame[0:6]),
              "src_mac": mac_text(frame[6:12]), "ethertype": int.from_bytes(frame[12:14], "big"),
              "ip_src": None, "ip_dst": None, "tag": None}
    if record["ethertype"] == ETH_P_IP and len(frame) >= 34:
        record["ip_src"] = socket.inet_ntoa(frame[26:30])
        record["ip_dst"] = socket.inet_ntoa(frame[30:34])
    at = frame.find(marker)
    if at >= 0:
        record["tag"] = frame[at:].split(b"\n", 1)[0].decode("ascii", "replace")
    return record


def admit_all_multicast(sock: socket.socket) -> None:
    """Let every interface deliver all multicast, as a program joining any group could."""
    for index, name in socket.if_nameindex():
        if name != "lo":
            mreq = struct.pack("iHH8s", index, PACKET_MR_ALLMULTI, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


def sniff(marker: str, foreign_macs: set[str], foreign_ips: set[str], max_seconds: float) -> dict:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    admit_all_multicast(sock)
    sock.setblocking(False)
    print("ready", flush=True)
    frames, seen = [], 0
    deadline = time.monotonic() + max_seconds
    stdin_open = True
    while stdin_open and time.monotonic() < deadline:
        readable, _, _ = select.select([sock, sys.stdin], [], [], deadline - time.monotonic())
        if sys.stdin in readable:
            stdin_open = bool(os.read(sys.stdin.fileno(), 4096))
        seen += drain(sock, marker.encode(), foreign_macs, foreign_ips, frames)
    seen += drain(sock, marker.encode(), foreign_macs, foreign_ips, frames)
    sock.close()
    return {"frames": frames, "seen": seen, "stopped": "stdin" if not stdin_open else "deadline"}


def drain(sock, marker: bytes, foreign_macs: set[str], foreign_ips: set[str], frames: list) -> int:
    count = 0
    while True:
        try:
            frame, address = sock.recvfrom(65535)
        except BlockingIOError:
            return count
        ifname, pkttype = address[0], address[2]
        if pkttype == PACKET_OUTGOING:
            continue
        count += 1
        record = parse_frame(frame, ifname, pkttype, marker)
        if record["tag"] or record["src_mac"] in foreign_macs or record["ip_src"] in foreign_ips:
            frames.append(record)


# --- spray -------------------------------------------------------------------------------

class Tally:
    """Counts of datagrams and frames handed to the kernel, and of those it refused."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def attempt(self, kind: str, action) -> None:
        try:
            action()
        except OSError as exc:
            self.refuse(kind, exc)
        else:
            self.sent[kind] = self.sent.get(kind, 0) + 1

    def refuse(self, kind: str, exc: OSError) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1
        reason = f"{kind}: {exc.strerror or exc}"
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def to_json(self) -> dict:
        return {"sent": self.sent, "refused": self.refused, "errors": self.errors}


def payload(marker: str, kind: str, slice_name: str, node: str, detail: str) -> bytes:
    return f"{marker}|{kind}|{slice_name}|{node}|{detail}\n".encode()


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    return sock


def send_unicast(tally: Tally, tag, kind: str, targets: list[str]) -> None:
    with udp_socket() as sock:
        for target in targets:
            tally.attempt(kind, lambda: sock.sendto(tag(kind, target), (target, PROBE_PORT)))


def send_out_each_interface(tally: Tally, tag) -> None:
    """Broadcast (IP_UNICAST_IF) and multicast (IP_MULTICAST_IF, TTL 1) out every interface."""
    for index, name in socket.if_nameindex():
        if name == "lo":
            continue
        with udp_socket() as sock:
            sock.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", index))
            tally.attempt("broadcast", lambda: sock.sendto(
                tag("broadcast", name), ("255.255.255.255", PROBE_PORT)))
        with udp_socket() as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", index))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            tally.attempt("multicast", lambda: sock.sendto(
                tag("multicast", name), (MULTICAST_GROUP, PROBE_PORT)))


def ip_checksum(header: bytes) -> int:
    """The Internet checksum (RFC 1071) of an IPv4 header or an ICMP message."""
    if len(header) % 2:
        header += b"\0"
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(dst_mac: bytes, src_ip: str, dst_ip: str, data: bytes) -> bytes:
    """An Ethernet frame with an IPv4/UDP datagram (TTL 1, no UDP checksum)."""
    udp = struct.pack("!HHHH", PROBE_PORT, PROBE_PORT, 8 + len(data), 0) + data
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 1, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return dst_mac + TAP_CLIENT_MAC + struct.pack("!H", ETH_P_IP) + header + udp


def write_into_tap(tally: Tally, tag, ifname: str, src_ip: str) -> None:
    """Attach to the slice's persistent TAP and write a broadcast and a multicast frame."""
    frames = {"tap-broadcast": (BROADCAST_MAC, "255.255.255.255"),
              "tap-multicast": (MULTICAST_MAC, MULTICAST_GROUP)}
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        tally.refuse("tap-attach", exc)
        return
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TAP | IFF_NO_PI))
        for kind, (mac, dst) in frames.items():
            frame = udp_frame(mac, src_ip, dst, tag(kind, ifname))
            tally.attempt(kind, lambda: os.write(fd, frame))
    except OSError as exc:
        tally.refuse("tap-attach", exc)
    finally:
        os.close(fd)


def spray(args) -> dict:
    tally = Tally()

    def tag(kind: str, detail: str) -> bytes:
        return payload(args.marker, kind, args.slice, args.node, detail)

    send_unicast(tally, tag, "unicast", csv(args.unicast))
    send_out_each_interface(tally, tag)
    for item in csv(args.taps):
        ifname, src_ip = item.split("=")
        write_into_tap(tally, tag, ifname, src_ip)
    send_unicast(tally, tag, "control", csv(args.controls))
    return tally.to_json()


# --- command line ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m dataplane.probe")
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("ping")
    p.add_argument("--targets", required=True)
    p.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("sniff")
    p.add_argument("--marker", required=True)
    p.add_argument("--foreign-macs", default="")
    p.add_argument("--foreign-ips", default="")
    p.add_argument("--max-seconds", type=float, default=10.0)
    p = sub.add_parser("spray")
    for name in ("--marker", "--slice", "--node"):
        p.add_argument(name, required=True)
    for name in ("--unicast", "--controls", "--taps"):
        p.add_argument(name, default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.probe == "ping":
        emit(ping_all(csv(args.targets), args.timeout))
    elif args.probe == "sniff":
        emit(sniff(args.marker, set(csv(args.foreign_macs)), set(csv(args.foreign_ips)), args.max_seconds))
    else:
        emit(spray(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
