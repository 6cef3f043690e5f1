"""The egress speaker's state machine, without I/O: what the helper should do with each line
ExaBGP sends. It owns the announcements (screened by policy, acked by ExaBGP), the neighbour
sessions (state, since), the RIB, the mirror of what our routes in the kernel are, and the
status document. The helper (helper.py) feeds it events and carries out the effects it
returns: commands to ExaBGP, FIB operations, session notices, log lines.

FIB operations are coalesced: a prefix changed many times between two flushes costs one
netlink message (or none, when it ends where the kernel already is).

Behind the vISP's border router (`paths` in the config) the speaker has one session, to the
border, carrying one ADD-PATH path per provider; the RIB then treats each path as a
neighbour keyed by its next hop (the provider's gateway on the slice's link), so its best
route's gateway is the provider the packets leave by.

Each installed route's metric says how good it is: `metric + preference_code(local_pref,
path length)`, lower better. The egress manager compares egress slivers' FIBs by it to steer
a prefix toward the egress with the best route (bgp/egress_manager.py)."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from bgp import api
from compiler.daemons.speaker_config import SpeakerConfig
from compiler.policy import screen
from bgp.rib import PeerPolicy, Rib

MAX_LISTED_FIB_ERRORS = 20
PREFERENCE_CODES = (0xFFFF << 8) | 0xFF  # the highest preference_code


def preference_code(local_pref: int, length: int) -> int:
    """0 for the most preferred route; higher local_pref, then shorter AS path, lower."""
    return ((0xFFFF - min(max(local_pref, 0), 0xFFFF)) << 8) | min(length, 0xFF)


@dataclass
class Effects:
    notices: list = field(default_factory=list)   # session events for the event socket
    logs: list = field(default_factory=list)      # lines for the log
    commands: list = field(default_factory=list)  # for ExaBGP
    urgent: bool = False                          # flush FIB and status now (state change)


@dataclass
class _Session:
    state: str = "idle"
    since: float = 0.0
    reason: str = ""
    flaps: int = 0


class Speaker:
    def __init__(self, config: SpeakerConfig, now: float):
        self.config = config
        self.started = now
        self.neighbors = config.neighbor_by_address()
        self.sessions = {address: _Session(since=now) for address in self.neighbors}
        self.paths = {p.path_id: p for p in config.paths}
        if self.paths:   # behind a border: a RIB neighbour per provider path, keyed by next hop
            self.rib = Rib(config.local_as, [PeerPolicy(p.next_hop, p.local_pref) for p in config.paths])
        else:
            self.rib = Rib(config.local_as, [PeerPolicy(n.address, n.local_pref, n.max_prefix)
                                              for n in config.neighbors])
        self.unknown_paths = 0
        self.accepted, self.refused = screen(config.announce, config.allowed_prefixes)
        self.announced: list = []                 # acked by ExaBGP
        self.rejected_by_exabgp: list = []
        self._awaiting_ack: deque = deque()        # Announcement, or None for a refresh request
        self._pending: dict[str, str | None] = {}  # prefix -> gateway (None: delete)
        self.installed: dict[str, tuple] = {}      # what our routes in the kernel are: (gateway, metric)
        self._routes: dict[tuple, tuple] = {}      # one shared (gateway, metric) tuple per value
        self.fib_changes = 0                       # kernel changes made or handed to the FIB writer
        self.fib_in_flight = 0                     # ... of which the kernel has not answered yet
        self._stray: list = []                     # deletions of routes found beside ours
        self.installed_by: Counter = Counter()     # gateway -> count
        self.fib_errors = 0
        self.last_fib_errors: deque = deque(maxlen=MAX_LISTED_FIB_ERRORS)
        self.stale_routes_removed = 0

    # -- announcements -----------------------------------------------------------------
    def startup(self, respawned: bool = False) -> tuple[list[str], list[str]]:
        """(commands for ExaBGP, log lines): accepted announcements; refusals logged.

        `respawned`: ExaBGP restarted a helper that died while its sessions stayed up; a
        route-refresh request then makes the providers send their tables again so the FIB is
        rebuilt (ExaBGP answers `error` if no session is up: ignored)."""
        commands = []
        for announcement in self.accepted:
            self._awaiting_ack.append(announcement)
            commands.append(api.announce_command(announcement, self.config.local_as, self.config.ibgp))
        if respawned:
            self._awaiting_ack.append(None)
            commands.append(api.REFRESH_COMMAND)
        logs = [f"announcement refused: {r.announcement.prefix}: {r.reason}" for r in self.refused]
        logs += [f"announcing {a.prefix} (prepend {a.prepend}, communities {list(a.communities)})"
                 for a in self.accepted]
        return commands, logs

    def _ack(self, ok: bool, effects: Effects) -> None:
        if not self._awaiting_ack:
            return
        announcement = self._awaiting_ack.popleft()
        if announcement is None:            # the route-refresh request
            return
        if ok:
            self.announced.append(announcement)
        else:
            self.rejected_by_exabgp.append(announcement)
            effects.logs.append(f"announcement {announcement.prefix}: ExaBGP answered error")
        effects.urgent = True

    # -- events ------------------------------------------------------------------------
    def handle(self, event, now: float) -> Effects:
        effects = Effects()
        if isinstance(event, api.Update):
            self._update(event, now, effects)
        elif isinstance(event, api.StateChange):
            self._state(event, now, effects)
        elif isinstance(event, api.Ack):
            self._ack(event.ok, effects)
        return effects

    def _queue(self, changes) -> None:
        pending = self._pending
        for prefix, best in changes:
            pending[prefix] = best

    def _update(self, event: api.Update, now: float, effects: Effects) -> None:
        if event.peer not in self.neighbors:
            return
        if self.sessions[event.peer].state != "up":
            # only an Established session sends updates: we started while it was up (ExaBGP
            # respawned us and the route refresh brought the routes back)
            self._state(api.StateChange(event.peer, "up", "", event.time), now, effects)
        rib = self.rib
        if self.paths:
            self._path_update(event, effects)
            return
        was_exceeded = rib.stats(event.peer)["max_prefix_exceeded"] if event.announced else None
        if event.withdrawn:
            self._queue(rib.withdraw(event.peer, event.withdrawn))
        for routes in event.announced:
            self._queue(rib.announce(event.peer, routes.prefixes, routes.as_path, routes.length))
        if was_exceeded is False and rib.stats(event.peer)["max_prefix_exceeded"]:
            neighbor = self.neighbors[event.peer]
            effects.logs.append(f"neighbor {neighbor.name} ({event.peer}) exceeded max-prefix "
                                f"{neighbor.max_prefix}: further new prefixes refused, session kept")
            effects.urgent = True

    def _path_update(self, event: api.Update, effects: Effects) -> None:
        rib, paths = self.rib, self.paths
        for path_id, prefixes in event.withdrawn_paths.items():
            path = paths.get(path_id)
            if path is not None:
                self._queue(rib.withdraw(path.next_hop, prefixes))
        for routes in event.announced:
            path = paths.get(routes.path_id)
            if path is None:   # a path the border should not send: count it, do not route by it
                self.unknown_paths += len(routes.prefixes)
                effects.logs.append(f"{len(routes.prefixes)} routes on unknown path id {routes.path_id!r} ignored")
                continue
            self._queue(rib.announce(path.next_hop, routes.prefixes, routes.as_path, routes.length))

    def _rib_keys(self, address: str) -> list[str]:
        """The RIB neighbours a session carries: itself, or the providers' paths on it."""
        return [p.next_hop for p in self.config.paths] if self.paths else [address]

    def _state(self, event: api.StateChange, now: float, effects: Effects) -> None:
        session = self.sessions.get(event.peer)
        if session is None:
            return
        neighbor = self.neighbors[event.peer]
        previous = session.state
        if event.state == previous:
            return
        session.state = event.state
        session.since = now
        if event.state == "down":
            session.reason = event.reason
        if event.state == "up":
            effects.notices.append(self._notice(neighbor, "up", event, now))
            effects.logs.append(f"neighbor {neighbor.name} ({event.peer}) up")
        elif previous == "up":
            session.flaps += 1
            for key in self._rib_keys(event.peer):
                self._queue(self.rib.peer_down(key))
            effects.notices.append(self._notice(neighbor, "down", event, now))
            effects.logs.append(f"neighbor {neighbor.name} ({event.peer}) down: {event.reason or event.state}")
        effects.urgent = True

    def _notice(self, neighbor, state: str, event, now: float) -> dict:
        notice = {"slice": self.config.slice, "node": self.config.node, "neighbor": neighbor.name,
                  "address": neighbor.address, "state": state, "time": event.time or now}
        if state == "down":
            notice["reason"] = event.reason
        return notice

    def stop(self, now: float, reason: str = "speaker stopped") -> Effects:
        """The helper is exiting: every session counts as down, every route is withdrawn."""
        effects = Effects(urgent=True)
        for address, session in self.sessions.items():
            self._state(api.StateChange(address, "down", reason, now), now, effects)
        for prefix in list(self.installed):
            self._pending[prefix] = None
        return effects

    # -- FIB ---------------------------------------------------------------------------
    def pending_count(self) -> int:
        return len(self._pending) + len(self._stray)

    def _route(self, gateway: str, metric: int) -> tuple:
        key = (gateway, metric)
        return self._routes.setdefault(key, key)

    def take_fib_ops(self) -> list[tuple[str, str | None, int]]:
        """Coalesced operations that bring the kernel to the RIB's best routes:
        `(prefix, gateway, metric)` to add or replace, `(prefix, None, metric)` to delete; a
        route whose metric changes is added at the new one before the old one goes."""
        pending, self._pending = self._pending, {}
        installed, rib, base = self.installed, self.rib, self.config.metric
        ops, self._stray = self._stray, []
        metrics: dict[tuple, int] = {}   # (best, path length) -> metric: a table has few of them
        best_length = rib.best_length
        for prefix, best in pending.items():
            current = installed.get(prefix)
            if best is None:
                if current is not None:
                    ops.append((prefix, None, current[1]))
                continue
            key = (best, best_length(prefix))
            metric = metrics.get(key)
            if metric is None:
                metric = metrics[key] = base + preference_code(rib.local_pref(best), key[1])
            if current is not None and current[0] == best and current[1] == metric:
                continue
            ops.append((prefix, best, metric))
            if current is not None and current[1] != metric:
                ops.append((prefix, None, current[1]))
        return ops

    def fib_applied(self, ops, errors) -> list[str]:
        """Record what the kernel now holds; returns log lines for the failures."""
        failed = {(error.prefix, error.op) for error in errors} if errors else ()
        installed, counts = self.installed, self.installed_by
        for prefix, gateway, metric in ops:
            if failed and (prefix, "delete" if gateway is None else "replace") in failed:
                continue
            old = installed.get(prefix)
            if gateway is None:
                if old is not None and old[1] == metric:
                    counts[old[0]] -= 1
                    del installed[prefix]
            else:
                if old is not None:
                    counts[old[0]] -= 1
                installed[prefix] = self._route(gateway, metric)
                counts[gateway] += 1
        self.fib_changes += len(ops)
        self.fib_errors += len(errors)
        self.last_fib_errors.extend(str(error) for error in errors)
        logs = [f"FIB: {error}" for error in errors[:5]]
        if len(errors) > 5:
            logs.append(f"FIB: {len(errors) - 5} more failures in this batch")
        return logs

    def fib_taken(self, ops) -> dict:
        """Record `ops` as done before the kernel answers (the FIB writer thread applies them
        meanwhile); returns what to give `fib_failed` if some fail: what each prefix was."""
        before = {}
        for prefix, _gateway, _metric in ops:
            if prefix not in before:
                before[prefix] = self.installed.get(prefix)
        self.fib_applied(ops, [])
        self.fib_in_flight += len(ops)
        return before

    def fib_answered(self, count: int) -> None:
        """The kernel has answered for `count` changes recorded by fib_taken."""
        self.fib_in_flight = max(0, self.fib_in_flight - count)

    def fib_failed(self, ops, errors, before: dict) -> list[str]:
        """Some of `ops` (recorded by fib_taken) failed: put their prefixes back as they were,
        then record the batch as fib_applied would have; returns its log lines."""
        installed, counts = self.installed, self.installed_by
        for prefix, old in before.items():
            current = installed.pop(prefix, None)
            if current is not None:
                counts[current[0]] -= 1
            if old is not None:
                installed[prefix] = old
                counts[old[0]] += 1
        self.fib_changes -= len(ops)
        return self.fib_applied(ops, errors)

    def resync(self, kernel_routes) -> None:
        """After a failed FIB write: take the kernel's word for what is installed (its
        `(prefix, gateway, metric)` entries) and queue whatever differs from the RIB's best
        routes."""
        self.installed = {}
        self.fib_in_flight = 0
        for prefix, gateway, metric in sorted(kernel_routes, key=lambda e: -e[2]):
            if gateway is None:
                self._stray.append((prefix, None, metric))
                continue
            replaced = self.installed.get(prefix)
            if replaced is not None:   # two of ours for one prefix: keep the lower metric's
                self._stray.append((prefix, None, replaced[1]))
            self.installed[prefix] = self._route(gateway, metric)
        self.installed_by = Counter(gateway for gateway, _ in self.installed.values())
        best = self.rib.best_routes()
        pending = {p: None for p in self.installed if p not in best}
        pending.update(best)
        self._pending = pending

    # -- status ------------------------------------------------------------------------
    def status(self, now: float) -> dict:
        neighbors = {}
        for address, neighbor in self.neighbors.items():
            session = self.sessions[address]
            entry = {
                "name": neighbor.name, "address": address, "peer_as": neighbor.peer_as,
                "local_pref": neighbor.local_pref, "max_prefix": neighbor.max_prefix,
                "state": session.state, "since": session.since,
                "uptime": round(now - session.since, 3) if session.state == "up" else 0.0,
                "last_down_reason": session.reason, "flaps": session.flaps,
            }
            if self.paths:
                paths = {}
                for path in self.config.paths:
                    paths[path.name] = {"path_id": path.path_id, "next_hop": path.next_hop,
                                        "local_pref": path.local_pref, **self.rib.stats(path.next_hop),
                                        "installed": self.installed_by.get(path.next_hop, 0)}
                entry["paths"] = paths
                for key in ("received", "accepted", "installed"):
                    entry[key] = sum(p[key] for p in paths.values())
                entry["unknown_path_routes"] = self.unknown_paths
            else:
                entry.update(self.rib.stats(address))
                entry["installed"] = self.installed_by.get(address, 0)
            neighbors[neighbor.name] = entry

        def described(a):
            return {"prefix": a.prefix, "prepend": a.prepend, "communities": list(a.communities)}

        refused = [r.as_dict() for r in self.refused]
        refused += [{**described(a), "reason": "ExaBGP rejected the command"} for a in self.rejected_by_exabgp]
        return {
            "slice": self.config.slice, "node": self.config.node, "local_as": self.config.local_as,
            "router_id": self.config.router_id, "started": self.started,
            "updated": now,
            "neighbors": neighbors,
            "announced": [described(a) for a in self.announced],
            "announce_pending": [described(a) for a in self._awaiting_ack if a is not None],
            "refused": refused,
            # "changes" counts only what the kernel has answered for: the egress manager reads the
            # FIBs once this count is still, so it must not move before the routes are there
            "fib": {"installed": len(self.installed), "errors": self.fib_errors,
                    "changes": self.fib_changes - self.fib_in_flight, "in_flight": self.fib_in_flight,
                    "last_errors": list(self.last_fib_errors),
                    "stale_routes_removed": self.stale_routes_removed,
                    "rt_proto": self.config.rt_proto, "table": self.config.table,
                    "metric": self.config.metric},
        }
