"""Local socket access: an unprivileged program on a node exchanges raw IPv4 packets with
its slice's vISP through a UNIX SOCK_SEQPACKET socket, one packet per message.

Per (slice, node), a relay runs as root inside the sliver's namespace
(`python3 -m access.localsock --config JSON`). It owns a TUN device in the sliver whose
address is the first host of a small subnet of the slice's prefix (a /30: relay .1, the
program .2), and listens on a UNIX socket owned by the slice's uid and gid, mode 0600 (or
0660), so only the slice's user (and root) can connect: anyone else gets EACCES from
connect(2). The relay also checks the peer's credentials (SO_PEERCRED) on accept.

A message from a client is one IPv4 packet. The relay writes it into the TUN only if it is
a well-formed IPv4 packet whose source is the program's address: a program cannot spoof
another sliver's or another slice's addresses. Packets the sliver routes into the TUN (to
the program's address) go to every connected client, one message each; a client that is
not reading loses packets (as on a congested link), it never blocks the relay.

Config (JSON, a file or inline): socket (path), uid, gid, mode (default 0o600), tun
(device name), subnet ("A.B.C.D/30"), mtu (default 1500), log (path; else stderr).

`check_packet`, `addresses` and `daemon` are pure; the relay is I/O. Standard library
only, like the programs that use the socket.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

from compiler.access_types.socket import addresses, normalise  # the relay's config format

from .spec import DaemonSpec, module_env, python

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
MAX_PACKET = 65535
SO_PEERCRED_FORMAT = "3i"


# --------------------------------------------------------------------------- pure

def check_packet(packet: bytes, source: bytes) -> str | None:
    """None if `packet` may enter the vISP from the program whose address is `source`
    (4 bytes), else the reason it may not."""
    if len(packet) < 20:
        return "short"
    if packet[0] >> 4 != 4:
        return "not-ipv4"
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or ihl > len(packet):
        return "bad-header-length"
    if struct.unpack_from("!H", packet, 2)[0] != len(packet):
        return "bad-total-length"
    if packet[12:16] != source:
        return "spoofed-source"
    return None


def daemon(name: str, config: dict, run_dir: str, interpreter: str | None = None):
    """The relay as a process to run as root in the sliver's namespace (cwd = run_dir)."""
    conf = f"{name}.json"
    text = json.dumps(normalise(config), indent=1, sort_keys=True) + "\n"
    return DaemonSpec(name=name,
                      argv=(interpreter or python(), "-m", "access.localsock", "--config", os.path.join(run_dir, conf)),
                      files={conf: text}, env=module_env())


# --------------------------------------------------------------------------- relay (I/O)

class Relay:
    def __init__(self, config: dict, log):
        self.config = normalise(config)
        self.log = log
        relay, program, self.prefixlen = addresses(self.config["subnet"])
        self.relay_address = relay
        self.program_address = program
        self.source = socket.inet_aton(program)
        self.clients: dict[int, socket.socket] = {}
        self.counters = {"to_tun": 0, "to_clients": 0, "dropped_busy": 0}
        self.rejected: dict[str, int] = {}
        self.stopping = False
        self.tun_fd = -1
        self.listener: socket.socket | None = None
        self.socket_inode = None

    def say(self, text: str) -> None:
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} localsock: {text}\n")
        self.log.flush()

    # setup ---------------------------------------------------------------
    def open_tun(self) -> None:
        name = self.config["tun"]
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        self.tun_fd = fd
        for step in (["ip", "address", "replace", f"{self.relay_address}/{self.prefixlen}", "dev", name],
                     ["ip", "link", "set", "dev", name, "mtu", str(self.config["mtu"]), "up"]):
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(step)}: {result.stderr.strip()}")

    def open_socket(self) -> None:
        path = self.config["socket"]
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier relay
            else:
                raise RuntimeError(f"{path} exists and is not a socket")
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # 0600 from the start: no window where others may connect
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        os.chown(path, self.config["uid"], self.config["gid"])
        os.chmod(path, self.config["mode"])
        self.socket_inode = os.lstat(path).st_ino
        listener.listen(16)
        listener.setblocking(False)
        self.listener = listener

    # runtime -------------------------------------------------------------
    def allowed_peer(self, conn: socket.socket) -> bool:
        pid, uid, gid = struct.unpack(SO_PEERCRED_FORMAT,
                                      conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                      struct.calcsize(SO_PEERCRED_FORMAT)))
        if uid in (0, self.config["uid"]):
            return True
        return bool(self.config["mode"] & 0o060) and gid == self.config["gid"]

    def accept(self, selector) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        if not self.allowed_peer(conn):
            self.say("refused a client with foreign credentials")
            conn.close()
            return
        conn.setblocking(False)
        self.clients[conn.fileno()] = conn
        selector.register(conn, selectors.EVENT_READ, "client")
        self.say(f"client connected ({len(self.clients)} now)")

    def drop_client(self, selector, conn: socket.socket) -> None:
        selector.unregister(conn)
        self.clients.pop(conn.fileno(), None)
        conn.close()
        self.say(f"client left ({len(self.clients)} now)")

    def from_client(self, selector, conn: socket.socket) -> None:
        for _ in range(64):  # bounded batch, then let others run
            try:
                packet = conn.recv(MAX_PACKET + 1)
            except BlockingIOError:
                return
            except OSError:
                self.drop_client(selector, conn)
                return
            if not packet:
                self.drop_client(selector, conn)
                return
            reason = check_packet(packet, self.source)
            if reason is not None:
                count = self.rejected.get(reason, 0) + 1
                self.rejected[reason] = count
                if count <= 10 or count % 1000 == 0:
                    self.say(f"rejected a packet from a client: {reason} (x{count})")
                continue
            try:
                os.write(self.tun_fd, packet)
                self.counters["to_tun"] += 1
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EINVAL, errno.EIO):
                    raise

    def from_tun(self, selector) -> None:
        for _ in range(64):
            try:
                packet = os.read(self.tun_fd, MAX_PACKET)
            except BlockingIOError:
                return
            for conn in list(self.clients.values()):
                try:
                    conn.send(packet)
                    self.counters["to_clients"] += 1
                except BlockingIOError:
                    self.counters["dropped_busy"] += 1
                except OSError:
                    self.drop_client(selector, conn)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            self.open_tun()
            self.open_socket()
        except (OSError, RuntimeError) as error:
            self.say(f"cannot start: {error}")
            self.cleanup()
            return 1
        self.say(f"relaying {self.config['socket']} <-> {self.config['tun']} "
                 f"(relay {self.relay_address}, program {self.program_address}/{self.prefixlen})")
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, "listener")
        selector.register(self.tun_fd, selectors.EVENT_READ, "tun")
        try:
            while not self.stopping:
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "listener":
                        self.accept(selector)
                    elif key.data == "tun":
                        self.from_tun(selector)
                    elif key.fileobj.fileno() in self.clients:
                        self.from_client(selector, key.fileobj)
        finally:
            self.say(f"stopping: {self.counters} rejected {self.rejected}")
            selector.close()
            self.cleanup()
        return 0

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def cleanup(self) -> None:
        for conn in self.clients.values():
            conn.close()
        self.clients.clear()
        if self.listener is not None:
            self.listener.close()
            try:  # remove the socket only if it is still ours
                if os.lstat(self.config["socket"]).st_ino == self.socket_inode:
                    os.unlink(self.config["socket"])
            except FileNotFoundError:
                pass
        if self.tun_fd >= 0:
            os.close(self.tun_fd)  # the (non-persistent) TUN device goes with it
            self.tun_fd = -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m access.localsock",
                                     description="Relay raw IPv4 packets between a UNIX SOCK_SEQPACKET socket and a TUN device.")
    parser.add_argument("--config", required=True, help="JSON file or inline JSON")
    args = parser.parse_args(argv)
    text = args.config if args.config.lstrip().startswith("{") else open(args.config).read()
    config = json.loads(text)
    log = open(config["log"], "a") if config.get("log") else sys.stderr
    try:
        return Relay(config, log).run()
    finally:
        if log is not sys.stderr:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
