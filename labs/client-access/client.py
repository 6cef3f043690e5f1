"""client-access's OpenVPN client side: the client process in the client host with its
output timestamped as it comes (`Client`), and the addresses and routes of a namespace
read over netlink (`Addresses`).

I/O: the client process in the lab's client host.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time

from dataplane import netns  # (run.py put the repository on sys.path)
from pyroute2 import IPRoute


class Addresses:
    """IPv4 addresses of one device in a namespace (netlink socket opened there, used by
    the thread that opened it)."""

    def __init__(self, ns: str):
        with netns.entered(ns):
            self.ipr = IPRoute()

    def of(self, dev: str) -> str | None:
        for msg in self.ipr.get_addr(family=socket.AF_INET):
            if msg.get_attr("IFA_LABEL") == dev:
                return msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        return None

    def route_dev(self, dst: str) -> str | None:
        try:
            msg = self.ipr.route("get", dst=dst)[0]
        except Exception:  # noqa: BLE001 - unreachable
            return None
        oif = msg.get_attr("RTA_OIF")
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in self.ipr.get_links()}
        return links.get(oif)

    def close(self) -> None:
        self.ipr.close()


class Client:
    """One OpenVPN client process in the client host, its output timestamped as it comes."""

    def __init__(self, lab, host: str, profile: str, dev: str, log_path: str):
        self.lab, self.host, self.profile, self.dev = lab, host, profile, dev
        self.lines: list[tuple[float, str]] = []
        self.log = open(log_path, "w")
        self.started = time.monotonic()
        self.proc = lab.popen(host, ["openvpn", "--config", profile, "--dev", dev, "--dev-type", "tun",
                                     "--verb", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            self.log.write(line)
        self.log.flush()

    def said(self, text: str) -> float | None:
        return next((t for t, line in list(self.lines) if text in line), None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.proc.stdout.close()
        self.log.close()
