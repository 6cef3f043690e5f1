"""PPTP for bench/access.py, started by the bench itself: `vispd up` does not build PPTP
access points yet (vispd/engine.py `unsupported_sections` refuses `type: pptp`, and
vispd/access_plan.py `_server_daemon` returns None for it), but access/pptp offers the
server (pptpd -e pppd-engine) and the client engine, so the bench runs them by hand where
vispd would: pptpd in the plb sliver of the OpenVPN access point's node, listening on that
sliver's public address (TCP 1723 and GRE, beside OpenVPN's UDP 1194), and the client
engine in the OpenVPN point's client host on the public underlay. The PPTP pool is the last
/30 of the OpenVPN point's /28 pool, which the other slivers already route to that node
(OpenVPN hands out the low addresses first; the PPTP server TUN's /32 to the client is more
specific than OpenVPN's /28, so the two coexist). The link is unencrypted (no MPPE).

I/O (root): pptpd and the PPP engines it starts, stopped by PID.
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

from access.pptp import launch

from .access_proc import Procs, has_link, pings, wait_for

USER, PASSWORD = "bench", "bench-pptp-secret"


class PptpPoint:
    def __init__(self, work: str, procs: Procs, sliver_ns: str, client_ns: str, listen: str, openvpn_pool: str,
                 tag: str):
        self.work, self.procs = os.path.join(work, "pptp"), procs
        self.sliver_ns, self.client_ns, self.listen = sliver_ns, client_ns, listen
        pool = ipaddress.IPv4Network(openvpn_pool)
        self.pool = str(list(pool.subnets(new_prefix=30))[-1])
        self.server_tun = "hxpp"  # + index: hxpp0, in the sliver
        self.client_tun = f"hxpc{tag}"[:15]
        self.server = None
        self.client = None
        self.status_file = os.path.join(self.work, "client.status")
        self.client_conf = os.path.join(self.work, "client.json")

    @property
    def local_address(self) -> str:
        return str(list(ipaddress.IPv4Network(self.pool).hosts())[0])

    def start_server(self, slice_prefix: str) -> None:
        os.makedirs(self.work, exist_ok=True)
        users = os.path.join(self.work, "users.json")
        with open(os.open(users, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump({"users": {USER: PASSWORD}}, handle)
        launch.write_server_files(self.work, {"slice": "plb", "listen": self.listen, "pool": self.pool,
                                              "users_file": users, "tun_prefix": self.server_tun,
                                              "log_file": os.path.join(self.work, "server-engine.log")})
        with open(os.open(self.client_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump({"user": USER, "password": PASSWORD, "tun": self.client_tun, "routes": [slice_prefix],
                       "status_file": self.status_file, "log_file": os.path.join(self.work, "client-engine.log"),
                       "connect_timeout": 20}, handle)
        env = {**os.environ, **launch.engine_env()}
        self.server = self.procs.start(self.sliver_ns, launch.server_command(self.work), "pptpd.log", env=env)
        wait_for(lambda: "1723" in _listening(self.sliver_ns), 10, 0.02, self.server, "pptpd listening")

    def connect(self) -> None:
        """Start the client engine; returns when its status file says the link is up."""
        if os.path.exists(self.status_file):
            os.unlink(self.status_file)
        env = {**os.environ, **launch.engine_env()}
        self.client = self.procs.start(self.client_ns, launch.client_command(self.listen, self.client_conf),
                                       "pptp-client.log", env=env)
        wait_for(lambda: _state(self.status_file) == "up", 25, 0.005, self.client, "PPTP link up")

    def first_ping(self, target: str) -> None:
        wait_for(lambda: pings(self.client_ns, target), 10, 0.0, self.client, "PPTP first ping")

    def client_address(self) -> str:
        with open(self.status_file) as handle:
            return json.load(handle)["local"]

    def disconnect(self) -> None:
        if self.client is not None:
            self.procs.stop(self.client, timeout=8)
            self.client = None
        # the server's engine for that call ends when the pty closes: wait for its TUN to go
        wait_for(lambda: not has_link(self.sliver_ns, f"{self.server_tun}0"), 10, 0.02, None,
                 "PPTP server side of the call gone")

    def stop(self) -> None:
        self.disconnect()
        if self.server is not None:
            self.procs.stop(self.server)
            self.server = None


def _state(path: str) -> str | None:
    try:
        with open(path) as handle:
            return json.load(handle).get("state")
    except (OSError, ValueError):
        return None


def _listening(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htln", "sport = :1723"], capture_output=True,
                          text=True).stdout
