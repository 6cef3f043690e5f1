"""The egress manager: every sliver's default route points at the nearest live egress.

One process per topology (started by `vispd up`, stopped by PID on `down`). It listens
on a UNIX datagram socket for session events from the ExaBGP helpers
(`{"slice", "node", "neighbor", "state": "up"|"down"}`), and re-reads the helpers'
status files every few seconds as a safety net. For each slice, an egress node is *live*
while at least one of its provider sessions is up. Each sliver that is not itself a live
egress gets `default via <first hop toward the nearest live egress>` (least IGP cost, ties
by name), with route protocol 79 and its loopback as source; a live egress relies on the
routes its helper installed from BGP. With no live egress the default is removed.

`choose_defaults` is the pure decision; the rest is I/O.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time

RECHECK_SECONDS = 2.0


def choose_defaults(slice_config: dict, live: set[str]) -> dict[str, tuple[str, str, str] | None]:
    """{sliver ns: (gateway, ifname, egress node) or None} for one slice, given live egresses."""
    result: dict[str, tuple[str, str, str] | None] = {}
    for sliver in slice_config["slivers"]:
        if sliver["node"] in live:
            result[sliver["ns"]] = None  # a live egress: BGP routes, no default of ours
            continue
        options = [(hop[2], node, hop[0], hop[1]) for node, hop in sliver["toward"].items() if node in live]
        if not options:
            result[sliver["ns"]] = None
            continue
        _, node, gateway, ifname = min(options)
        result[sliver["ns"]] = (gateway, ifname, node)
    return result


def live_from_status(slice_config: dict) -> set[str]:
    """Egress nodes whose helper status file shows at least one session up."""
    live = set()
    for node, path in slice_config["status_files"].items():
        try:
            with open(path) as handle:
                status = json.load(handle)
        except (OSError, ValueError):
            continue
        neighbors = status.get("neighbors", {})
        items = neighbors.values() if isinstance(neighbors, dict) else neighbors
        if any(str(n.get("state", "")).lower() in ("up", "established") for n in items):
            live.add(node)
    return live


class Manager:
    def __init__(self, config: dict):
        self.config = config
        self.rt_proto = config["rt_proto"]
        self.sessions: dict[str, dict[str, set[str]]] = {s: {} for s in config["slices"]}
        self.applied: dict[str, tuple | None] = {}
        self._sockets: dict = {}
        self.changes = 0

    def ipr(self, ns: str):
        from pyroute2 import IPRoute

        from dataplane import netns

        sock = self._sockets.get(ns)
        if sock is None:
            with netns.entered(ns):
                sock = IPRoute()
            self._sockets[ns] = sock
        return sock

    def live(self, slice_name: str) -> set[str]:
        return {node for node, up in self.sessions[slice_name].items() if up}

    def seed_from_status(self) -> None:
        for slice_name, slice_config in self.config["slices"].items():
            for node in live_from_status(slice_config):
                self.sessions[slice_name].setdefault(node, set()).add("*status*")

    def resync_from_status(self) -> None:
        """Trust the helpers' status files over missed events (e.g. a helper restart)."""
        for slice_name, slice_config in self.config["slices"].items():
            live = live_from_status(slice_config)
            for node in slice_config["egress"]:
                up = self.sessions[slice_name].setdefault(node, set())
                if node in live and not up:
                    up.add("*status*")
                elif node not in live and up:
                    up.clear()

    def event(self, message: dict) -> None:
        slice_name, node = message.get("slice"), message.get("node")
        if slice_name not in self.sessions:
            return
        up = self.sessions[slice_name].setdefault(node, set())
        up.discard("*status*")
        if message.get("state") == "up":
            up.add(message.get("neighbor", "?"))
        else:
            up.discard(message.get("neighbor", "?"))

    def reconcile(self) -> None:
        for slice_name, slice_config in self.config["slices"].items():
            defaults = choose_defaults(slice_config, self.live(slice_name))
            loopbacks = {s["ns"]: s["loopback"] for s in slice_config["slivers"]}
            for ns, choice in defaults.items():
                if self.applied.get(ns, "unset") == choice:
                    continue
                self._install(ns, choice, loopbacks[ns])
                self.applied[ns] = choice
                self.changes += 1

    def _install(self, ns: str, choice, loopback: str) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        ipr = self.ipr(ns)
        try:
            if choice is None:
                with contextlib.suppress(NetlinkError):
                    ipr.route("del", dst="0.0.0.0/0", proto=self.rt_proto, table=254)
                return
            gateway, ifname, _ = choice
            index = ipr.link("get", ifname=ifname)[0]["index"]
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, prefsrc=loopback,
                      proto=self.rt_proto, table=254)
        except (NetlinkError, OSError) as exc:
            print(f"egress-manager: {ns}: {exc}", file=sys.stderr, flush=True)

    def write_status(self) -> None:
        status = {"time": time.time(), "changes": self.changes, "slices": {}}
        for slice_name, slice_config in self.config["slices"].items():
            status["slices"][slice_name] = {
                "live_egress": sorted(self.live(slice_name)),
                "defaults": {s["node"]: (self.applied.get(s["ns"]) or [None, None, None])[2]
                             for s in slice_config["slivers"]},
            }
        path = self.config["status_file"]
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(status, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)


def serve(config: dict) -> None:
    path = config["event_socket"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    manager = Manager(config)
    manager.seed_from_status()  # after binding: no event between the two is lost
    manager.reconcile()
    manager.write_status()
    next_resync = time.monotonic() + RECHECK_SECONDS
    while True:
        sock.settimeout(max(0.05, next_resync - time.monotonic()))
        try:
            data = sock.recv(65536)
            with contextlib.suppress(ValueError):
                manager.event(json.loads(data))
        except socket.timeout:
            manager.resync_from_status()
            next_resync = time.monotonic() + RECHECK_SECONDS
        manager.reconcile()
        manager.write_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    try:
        serve(config)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
