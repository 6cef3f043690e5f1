"""Run inside a sliver as the slice's user (stdlib only: the slice user runs the system
python): attach to a TUN pseudo-device, write one ICMP echo request into it and wait for
the echo reply to come back out of it.

usage: tun_ping.py IFNAME SRC DST TIMEOUT   -> prints 'reply from DST to SRC', exit 0; else 1
"""
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(src: str, dst: str, ident: int) -> bytes:
    payload = b"vispd-tun-probe"
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0, 64, 1, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def main() -> int:
    ifname, src, dst, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    time.sleep(0.05)  # the carrier comes up when a program attaches
    ident = os.getpid() & 0xFFFF
    os.write(fd, echo_request(src, dst, ident))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        packet = os.read(fd, 65535)
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] == 1 and packet[ihl] == 0 and struct.unpack("!H", packet[ihl + 4:ihl + 6])[0] == ident:
            print(f"reply from {socket.inet_ntoa(packet[12:16])} to {socket.inet_ntoa(packet[16:20])}")
            return 0
    print("no reply", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
