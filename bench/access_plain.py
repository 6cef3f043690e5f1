"""The plain OpenVPN pair for bench/access.py: two namespaces of our own (`vbx-TAG-s`,
`vbx-TAG-c`) joined by one veth, an OpenVPN server rendered by the very code vispd uses
(`access.openvpn.server_config` of an `OpenVPNServer`, so cipher negotiation, keepalive,
CRL check, management socket, `topology subnet` are the same) with a PKI of its own from
`access.pki`, and a client started exactly as the vISP's client is (`openvpn --config
PROFILE --dev NAME --dev-type tun`, the profile from `access.openvpn.client_profile`).
The iperf3 server runs in the server namespace on the server's tunnel address.

I/O (root): its own two namespaces and OpenVPN processes.
"""
from __future__ import annotations

import os
import subprocess

from access import openvpn

from .access_proc import Procs, ipv4_of, pings, wait_for

VETH_SERVER, VETH_CLIENT = "10.211.0.1", "10.211.0.2"
POOL = "10.212.0.0/28"
PUSHED = ("10.213.0.0/24",)  # one pushed route, as the vISP pushes the slice prefix


class PlainPair:
    def __init__(self, tag: str, work: str, procs: Procs):
        self.server_ns, self.client_ns = f"vbx-{tag}-s", f"vbx-{tag}-c"
        self.work, self.procs = work, procs
        self.run_dir = os.path.join(work, "plain-run")
        self.cfg = openvpn.OpenVPNServer(name="vbx-plain", pki_dir=os.path.join(work, "plain-pki"), dev="vbxsrv",
                                         local=VETH_SERVER, pool=POOL, routes=PUSHED)
        self.server = None
        self.client = None
        self.profile = os.path.join(work, "plain.ovpn")
        self.client_dev = "vbxcli"

    @property
    def server_tunnel_address(self) -> str:
        return self.cfg.server_address

    def namespaces(self) -> list[str]:
        return [self.server_ns, self.client_ns]

    def build(self) -> None:
        for ns in self.namespaces():
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                           check=True)
        subprocess.run(["ip", "-n", self.server_ns, "link", "add", "vbx0", "type", "veth",
                        "peer", "name", "vbx0", "netns", self.client_ns], check=True)
        for ns, address in ((self.server_ns, VETH_SERVER), (self.client_ns, VETH_CLIENT)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{address}/30", "dev", "vbx0"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "vbx0", "up"], check=True)
        openvpn.ensure_pki(self.cfg, users=("bench",), label="vbx-plain")
        os.makedirs(self.run_dir, exist_ok=True)
        for name, text in openvpn.server_files(self.cfg).items():
            with open(os.path.join(self.run_dir, name), "w") as handle:
                handle.write(text)
        with open(os.open(self.profile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(openvpn.client_profile(self.cfg.pki_dir, self.cfg, "bench"))

    def start_server(self) -> None:
        self.server = self.procs.start(self.server_ns, openvpn.server_command(self.run_dir, self.cfg.file("conf")),
                                       "plain-server.log")
        wait_for(lambda: ipv4_of(self.server_ns, self.cfg.dev), 10, 0.02, self.server, "plain OpenVPN server tun")

    def connect(self) -> str:
        """Start the client; returns its tunnel address once the server answers a ping."""
        self.client = self.procs.start(self.client_ns, ["openvpn", "--config", self.profile, "--dev",
                                                        self.client_dev, "--dev-type", "tun", "--verb", "3"],
                                       "plain-client.log")
        address = wait_for(lambda: ipv4_of(self.client_ns, self.client_dev), 15, 0.005, self.client,
                           "plain OpenVPN client address")
        wait_for(lambda: pings(self.client_ns, self.server_tunnel_address), 10, 0.0, self.client,
                 "plain OpenVPN first ping")
        return address.split("/")[0]

    def disconnect(self) -> None:
        if self.client is not None:
            self.procs.stop(self.client)
            self.client = None

    def destroy(self) -> None:
        for ns in self.namespaces():
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
