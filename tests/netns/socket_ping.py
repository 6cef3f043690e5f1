"""Run as a slice's user (system python, stdlib only): send one ICMP echo request into the
vISP through the slice's local socket (SOCK_SEQPACKET, one IP packet per message) and
wait for the reply to come back through it.

usage: socket_ping.py SOCKET SRC DST TIMEOUT  -> 'reply from DST to SRC' and exit 0;
       exit 3 with 'EACCES' when the socket may not be opened; else exit 1
"""
import os
import select
import socket
import struct
import sys
import time

from tun_ping import echo_request


def main() -> int:
    path, src, dst, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except PermissionError:
        print("EACCES")
        return 3
    ident = os.getpid() & 0xFFFF
    sock.send(echo_request(src, dst, ident))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        packet = sock.recv(65535)
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] == 1 and packet[ihl] == 0 and struct.unpack("!H", packet[ihl + 4:ihl + 6])[0] == ident:
            print(f"reply from {socket.inet_ntoa(packet[12:16])} to {socket.inet_ntoa(packet[16:20])}")
            return 0
    print("no reply")
    return 1


if __name__ == "__main__":
    sys.exit(main())
