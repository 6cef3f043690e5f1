"""The egress manager: every sliver's default route points at the nearest live egress.

One process per topology (started by `vispd up`, stopped by PID on `down`). It listens
on a UNIX datagram socket for session events from the ExaBGP helpers
(`{"slice", "node", "neighbor", "state": "up"|"down"}`) and re-reads the helpers' status
files four times a second. For each slice, an egress node is *live* while one of its
provider sessions is up *and* has routes installed (a session without routes carries
nothing); a "down" event acts at once, ahead of the status file. Each sliver that is not itself a live
egress gets `default via <first hop toward the nearest live egress>` (least IGP cost, ties
by name), with route protocol 79 and its loopback as source; a live egress relies on the
routes its helper installed from BGP. With no live egress the default is removed.

In a slice with `routing: ospf` the slivers' BIRDs carry the default instead: each egress
sliver's BIRD has a static protocol `egress_default` (0.0.0.0/0, exported into OSPF as a
type-1 external route, so each sliver picks the nearest egress by OSPF cost) that the
manager enables while that egress is live and disables when it is not, over BIRD's
control socket (re-asserted every few seconds, so a restarted BIRD is set right again).

Steering by prefix (bgp/steering.py, for slices with more than one egress node): the
egress speakers' routes carry their preference in their metric, so the manager reads the
live egresses' FIBs (protocol 78) when their speakers report changes (once they have been
still for STEER_QUIET, at most every STEER_SECONDS, at the latest STEER_LATEST after the
first change: a table loading is read once, not at every status write) and gives every sliver whose default does not lead to a best egress for a
prefix a route of its own for it (protocol 79, metric STEER_METRIC: in an egress sliver it
wins over the speaker's own, worse route). Why the manager and not iBGP among the egress
speakers: slivers other than the egresses run no BGP (their routing is vispd's static routes
or OSPF), so routes must be placed in them anyway; the manager already knows every sliver's
paths and costs, and the FIBs it reads are what the speakers really installed.

`choose_defaults` and `bgp.steering` are the pure decisions; the rest is I/O.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bgp import birdctl
from bgp.speaker import PREFERENCE_CODES
from bgp.steering import choose_steering, steering_ops
from dataplane import netns
from dataplane.fib import Fib
from dataplane.netns import SocketsByNamespace

RECHECK_SECONDS = 0.25
REASSERT_SECONDS = 5.0  # OSPF slices: re-send the egress default's state this often
STEER_SECONDS = 0.5     # steering is recomputed at most this often per slice
STEER_QUIET = 0.3       # ... once the speakers' FIBs have been still this long (a table is loading)
STEER_LATEST = 3.0      # ... or at the latest this long after the first unsteered change
STEER_METRIC = 10       # below every egress speaker route (their base metric is 20)


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


def loop_free_order(slice_config: dict, defaults: dict[str, tuple[str, str, str] | None]) -> list:
    """The new defaults in an order that makes no transient loop: slivers that stop using a
    default (live egresses) first, then by their cost to the egress they now use, nearest
    first, so a sliver's next hop has already turned toward the same egress when it turns.
    (Applied in topology order, a sliver could point at a neighbour still pointing back.)"""
    cost = {s["ns"]: s["toward"] for s in slice_config["slivers"]}

    def key(item):
        ns, choice = item
        return (-1, ns) if choice is None else (cost[ns][choice[2]][2], ns)

    return sorted(defaults.items(), key=key)


def _is_up(neighbor: dict) -> bool:
    return str(neighbor.get("state", "")).lower() in ("up", "established")


def read_statuses(slice_config: dict) -> dict[str, dict]:
    """{egress node: its speaker's status document ({} if unreadable)}."""
    documents = {}
    for node, path in slice_config["status_files"].items():
        try:
            with open(path) as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            document = {}
        documents[node] = document if isinstance(document, dict) else {}
    return documents


def read_sessions(slice_config: dict, documents: dict | None = None) -> dict[str, dict[str, dict]]:
    """{egress node: {session name: neighbour status}} from the helpers' status files."""
    sessions = {}
    for node, document in (documents if documents is not None else read_statuses(slice_config)).items():
        neighbors = document.get("neighbors", {})
        items = neighbors.values() if isinstance(neighbors, dict) else neighbors
        sessions[node] = {n.get("name", "?"): n for n in items}
    return sessions


def fib_marks(documents: dict) -> tuple:
    """What changes when an egress speaker changes its FIB: (node, FIB changes) pairs."""
    return tuple(sorted((node, (d.get("fib") or {}).get("changes", 0), d.get("started", 0))
                        for node, d in documents.items()))


def live_egress(sessions: dict[str, dict[str, dict]], down: dict[tuple[str, str], float]) -> set[str]:
    """Egress nodes with a session that is up, has routes installed, and has not been
    reported down by an event newer than the status file's last change for it."""
    live = set()
    for node, neighbors in sessions.items():
        for provider, neighbor in neighbors.items():
            reported_down = down.get((node, provider))
            if reported_down is not None and neighbor.get("since", 0) <= reported_down:
                continue
            if _is_up(neighbor) and neighbor.get("installed", 0) > 0:
                live.add(node)
    return live


def _namespace_sockets():
    return SocketsByNamespace(IPRoute)


class Manager:
    def __init__(self, config: dict, previous: "Manager | None" = None):
        self.config = config
        self.rt_proto = config["rt_proto"]
        self.down: dict[str, dict[tuple[str, str], float]] = {s: {} for s in config["slices"]}
        self.live_now: dict[str, set[str]] = {s: set() for s in config["slices"]}
        self.applied: dict[str, tuple | None] = {}
        self.ospf_applied: dict[tuple[str, str], tuple[bool, float]] = {}  # (slice, node) -> (on, when)
        self._sockets = _namespace_sockets()
        self.changes = 0
        self.marks: dict[str, tuple] = {s: () for s in config["slices"]}
        self.steered: dict[str, dict] = {}            # sliver ns -> {prefix: (gateway, ifname)}
        self.steer_state: dict[str, tuple] = {}       # slice -> (live, marks) last steered for
        self.steer_time: dict[str, float] = {}
        self.unsteered: dict[str, tuple] = {}         # slice -> (first change, last change, state)
        self._fibs: dict[tuple, Fib] = {}
        if previous is not None:  # a reload: keep sockets, routes in place and session news
            for name in self.down:
                self.down[name].update(previous.down.get(name, {}))
            self.applied, self._sockets, self.changes = previous.applied, previous._sockets, previous.changes
            self.ospf_applied = previous.ospf_applied
            self.steered, self._fibs = previous.steered, previous._fibs

    def ipr(self, ns: str):
        return self._sockets.get(ns)

    def event(self, message: dict) -> None:
        """A helper's session event: a 'down' takes effect at once, before any status file;
        'up' and 'routes' (a provider's first routes are installed) make the caller re-read
        the status files at once."""
        slice_name = message.get("slice")
        if slice_name not in self.down:
            return
        key = (message.get("node"), message.get("neighbor", "?"))
        if message.get("state") == "down":
            self.down[slice_name][key] = float(message.get("time") or time.time())
        else:
            self.down[slice_name].pop(key, None)

    def refresh(self) -> None:
        for slice_name, slice_config in self.config["slices"].items():
            documents = read_statuses(slice_config)
            self.live_now[slice_name] = live_egress(read_sessions(slice_config, documents), self.down[slice_name])
            self.marks[slice_name] = fib_marks(documents)

    def reconcile(self) -> None:
        for slice_name, slice_config in self.config["slices"].items():
            if len(slice_config["status_files"]) > 1:
                self._steer(slice_name, slice_config)
            if slice_config.get("routing") == "ospf":
                self._reconcile_ospf(slice_name, slice_config)
                continue
            defaults = choose_defaults(slice_config, self.live_now[slice_name])
            loopbacks = {s["ns"]: s["loopback"] for s in slice_config["slivers"]}
            for ns, choice in loop_free_order(slice_config, defaults):
                if self.applied.get(ns, "unset") == choice:
                    continue
                if self._install(ns, choice, loopbacks[ns]):
                    self.applied[ns] = choice
                    self.changes += 1

    # -- steering by prefix ------------------------------------------------------------
    def _fib(self, ns: str, proto: int, metric: int, high: int, prefsrc: str | None = None) -> Fib:
        key = (ns, proto, metric)
        fib = self._fibs.get(key)
        if fib is None:
            with netns.entered(ns):   # the socket stays in the namespace it was made in
                fib = self._fibs[key] = Fib(proto, 254, metric, prefsrc=prefsrc, metrics=(metric, high))
        return fib

    def _drop_fib(self, ns: str) -> None:
        for key in [k for k in self._fibs if k[0] == ns]:
            self._fibs.pop(key).close()

    def _steer_due(self, slice_name: str, state: tuple, now: float) -> bool:
        if self.steer_state.get(slice_name) == state:
            self.unsteered.pop(slice_name, None)
            return False
        first, last, seen = self.unsteered.get(slice_name, (now, now, state))
        if seen != state:
            last, seen = now, state
        self.unsteered[slice_name] = (first, last, seen)
        if now - self.steer_time.get(slice_name, 0.0) < STEER_SECONDS:
            return False
        live_changed = self.steer_state.get(slice_name, ((),))[0] != state[0]
        return live_changed or now - last >= STEER_QUIET or now - first >= STEER_LATEST

    def _steer(self, slice_name: str, slice_config: dict) -> None:
        live = self.live_now[slice_name]
        state = (frozenset(live), self.marks[slice_name])
        now = time.monotonic()
        if not self._steer_due(slice_name, state, now):
            return
        by_node = {s["node"]: s for s in slice_config["slivers"]}
        offers = {}
        if len(live) > 1:
            proto, base = self.config.get("bgp_rt_proto", 78), self.config.get("bgp_metric", 20)
            for node in live:
                try:
                    entries = self._fib(by_node[node]["ns"], proto, base, base + PREFERENCE_CODES).entries()
                except OSError as exc:
                    print(f"egress-manager: {slice_name}@{node}: reading the FIB: {exc}", file=sys.stderr, flush=True)
                    self._drop_fib(by_node[node]["ns"])
                    return
                table: dict[str, int] = {}
                for prefix, _, metric in entries:
                    if metric < table.get(prefix, metric + 1):
                        table[prefix] = metric
                offers[node] = table
        wanted = choose_steering(slice_config, live, offers)
        complete = True
        for sliver in slice_config["slivers"]:
            complete &= self._apply_steering(sliver, wanted.get(sliver["ns"], {}))
        if complete:
            self.steer_state[slice_name] = state
        self.steer_time[slice_name] = now

    def _apply_steering(self, sliver: dict, wanted: dict) -> bool:
        ns = sliver["ns"]
        applied = self.steered.get(ns, {})
        ops = steering_ops(applied, wanted)
        if not ops:
            return True
        try:
            errors = self._fib(ns, self.rt_proto, STEER_METRIC, STEER_METRIC, sliver["loopback"]).apply(ops)
        except OSError as exc:
            print(f"egress-manager: {ns}: steering: {exc}", file=sys.stderr, flush=True)
            self._drop_fib(ns)
            return False
        failed = {error.prefix for error in errors}
        for error in errors[:3]:
            print(f"egress-manager: {ns}: steering: {error}", file=sys.stderr, flush=True)
        now_applied = dict(wanted)
        for prefix in failed:   # the kernel kept what it had
            if prefix in applied:
                now_applied[prefix] = applied[prefix]
            else:
                now_applied.pop(prefix, None)
        self.steered[ns] = now_applied
        self.changes += 1
        return not errors

    def _reconcile_ospf(self, slice_name: str, slice_config: dict) -> None:
        now = time.monotonic()
        for node, path in sorted(slice_config["bird_sockets"].items()):
            want = node in self.live_now[slice_name]
            done = self.ospf_applied.get((slice_name, node))
            if done is not None and done[0] == want and now - done[1] < REASSERT_SECONDS:
                continue
            try:
                birdctl.set_protocol(path, slice_config["default_protocol"], want)
            except (OSError, birdctl.BirdError) as exc:  # BIRD starting or restarting: next round
                if done is None or done[0] != want:
                    print(f"egress-manager: {slice_name}@{node}: {exc}", file=sys.stderr, flush=True)
                continue
            if done is None or done[0] != want:
                self.changes += 1
            self.ospf_applied[(slice_name, node)] = (want, now)

    def _install(self, ns: str, choice, loopback: str) -> bool:
        try:
            ipr = self.ipr(ns)
            if choice is None:
                with contextlib.suppress(NetlinkError):
                    ipr.route("del", dst="0.0.0.0/0", proto=self.rt_proto, table=254)
                return True
            gateway, ifname, _ = choice
            index = ipr.link("get", ifname=ifname)[0]["index"]
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, prefsrc=loopback,
                      proto=self.rt_proto, table=254)
            return True
        except (NetlinkError, OSError) as exc:
            print(f"egress-manager: {ns}: {exc}", file=sys.stderr, flush=True)
            self._sockets.drop(ns)
            return False

    def write_status(self) -> None:
        status = {"time": time.time(), "changes": self.changes, "slices": {}}
        for slice_name, slice_config in self.config["slices"].items():
            if slice_config.get("routing") == "ospf":
                status["slices"][slice_name] = {
                    "live_egress": sorted(self.live_now[slice_name]),
                    "originating": sorted(node for (name, node), (on, _) in self.ospf_applied.items()
                                          if name == slice_name and on),
                }
                continue
            status["slices"][slice_name] = {
                "live_egress": sorted(self.live_now[slice_name]),
                "defaults": {s["node"]: (self.applied.get(s["ns"]) or [None, None, None])[2]
                             for s in slice_config["slivers"]},
                "steered": {s["node"]: len(self.steered.get(s["ns"], {})) for s in slice_config["slivers"]},
            }
        path = self.config["status_file"]
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(status, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)


def serve(config: dict, config_path: str | None = None) -> None:
    """Run until killed; SIGHUP re-reads the configuration (vispd sends it when the plan's
    paths or costs change), keeping what events have taught."""
    reload_requested = []
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.append(True))
    path = config["event_socket"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    manager = Manager(config)
    next_refresh = 0.0
    while True:
        if reload_requested and config_path:
            reload_requested.clear()
            with open(config_path) as handle:
                manager = Manager(json.load(handle), previous=manager)
            next_refresh = 0.0
        # Events act at once; status files are re-read every RECHECK_SECONDS.
        if time.monotonic() >= next_refresh:
            manager.refresh()
            next_refresh = time.monotonic() + RECHECK_SECONDS
        manager.reconcile()
        manager.write_status()
        sock.settimeout(max(0.01, next_refresh - time.monotonic()))
        try:
            data = sock.recv(65536)
            with contextlib.suppress(ValueError):
                manager.event(json.loads(data))
                manager.refresh()
        except (socket.timeout, InterruptedError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    try:
        serve(config, args.config)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
