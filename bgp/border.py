"""The border router's state machine, without I/O: what the border's helper should do with
each line its ExaBGP sends. The border holds the vISP's one eBGP session per provider at an
egress node and one iBGP session per slice egressing there (compiler/border.py plans them).

From providers: each provider's routes go through its own RIB (own AS refused, max-prefix),
and on to every slice egressing through it, on that provider's ADD-PATH path with that
provider's next hop on the slice's link: a whole table (`provider_routes: full`) or one
default route while the provider's session is up and has sent routes (`default`).

From slices: a slice's announcements are screened by the announcement rules of
compiler.policy (its own allocation only, no longer than /24, at most 5 prepends and 5
communities; its AS path may hold nothing but our AS: a slice originates, it transits
nothing), then by the flap guard (a prefix that changed more than `flap_changes` times in
`flap_window` seconds is held, withdrawn from the providers, until it has been quiet for a
window), then announced to the providers the slice egresses through, with our AS added once.

BFD (bgp/bfd_state.py): when a provider's BFD session fails, its session is dropped at
once: its paths are withdrawn from the slices as on any session drop, and ExaBGP tears it
down.

Every call returns Effects (commands for ExaBGP, log lines, urgency); `status` is the
document `vispd bgp status` reads.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bgp import api
from bgp.bfd_state import BfdTracker, teardown_command
from bgp.bfdctl import BfdControlLost, BfdControlUp, BfdState, BfdTimersSeen, diagnostic_text
from bgp.rib import PeerPolicy, Rib
from bgp.speaker import Effects
from compiler.daemons.border_config import BorderConfig, ProviderSession, SliceSession
from compiler.daemons.speaker_config import Announcement
from compiler.policy import refusal_reason

DEFAULT_ROUTE = "0.0.0.0/0"
NLRI_PER_COMMAND = 500  # prefixes per `announce attributes ... nlri` command
BFD_EVENTS = (BfdState, BfdTimersSeen, BfdControlLost, BfdControlUp)


@dataclass
class _Session:
    state: str = "idle"
    since: float = 0.0
    reason: str = ""
    flaps: int = 0


@dataclass
class _SliceState:
    """What one slice announces, and what became of each prefix."""

    announced: dict = field(default_factory=dict)  # prefix -> Announcement, as received
    refused: dict = field(default_factory=dict)    # prefix -> reason
    changes: dict = field(default_factory=dict)    # prefix -> deque of change times
    held: dict = field(default_factory=dict)       # prefix -> time of the last change
    sent: dict = field(default_factory=dict)       # provider name -> prefixes on its path


class Border:
    def __init__(self, config: BorderConfig, now: float, bfd=None):
        """`bfd`: the configuration's BFD section (compiler.daemons.bfd.BfdSection), if any."""
        self.config = config
        self.bfd = BfdTracker(bfd, now)
        self.started = now
        self.providers: dict[str, ProviderSession] = {p.neighbor.address: p for p in config.providers}
        self.provider_by_name = {p.neighbor.name: p for p in config.providers}
        self.slices: dict[str, SliceSession] = {s.neighbor.address: s for s in config.slices}
        self.sessions = {address: _Session(since=now) for address in (*self.providers, *self.slices)}
        self.ribs = {address: Rib(config.local_as, [PeerPolicy(address, p.neighbor.local_pref, p.neighbor.max_prefix)])
                     for address, p in self.providers.items()}
        self.slice_state = {address: _SliceState() for address in self.slices}
        self.exported: dict[str, dict[str, tuple]] = {a: {} for a in self.providers}  # prefix -> (path, communities)
        self._awaiting_ack: deque = deque()   # the command's description, for errors
        self.encodes_paths = False   # the helper encodes api.PathRoutes itself (ExaBGP with vispd's hook)
        self.command_errors: deque = deque(maxlen=20)

    def pending_count(self) -> int:
        """FIB changes waiting (the helper's loop asks): the border installs no routes."""
        return 0

    # -- helpers -----------------------------------------------------------------------
    def _up(self, address: str) -> bool:
        return self.sessions[address].state == "up"

    def _send(self, effects: Effects, command: str, what: str) -> None:
        effects.commands.append(command)
        self._awaiting_ack.append(what)

    def startup(self, respawned: bool = False) -> Effects:
        """`respawned`: ExaBGP restarted a helper that died while its sessions stayed up; a
        route refresh makes every peer send its routes again, rebuilding what was lost."""
        effects = Effects(logs=[f"border of node {self.config.node}: {len(self.providers)} providers, "
                                f"{len(self.slices)} slices"])
        if respawned:
            self._send(effects, api.REFRESH_COMMAND, "route refresh")
            effects.logs.append("the previous helper of this ExaBGP died: asking every peer to resend")
        return effects

    # -- events ------------------------------------------------------------------------
    def handle(self, event, now: float) -> Effects:
        effects = Effects()
        if isinstance(event, api.Update):
            if event.peer in self.providers:
                self._provider_update(event, now, effects)
            elif event.peer in self.slices:
                self._slice_update(event, now, effects)
        elif isinstance(event, api.StateChange):
            self._state(event, now, effects)
        elif isinstance(event, api.RefreshRequest):
            if event.peer in self.slices and self._up(event.peer):
                effects.logs.append(f"{self._name(event.peer)} asked for its routes again: resending")
                for provider in self.providers:
                    if self._up(provider):
                        self._full_table(provider, event.peer, effects)
        elif isinstance(event, BFD_EVENTS):
            self._bfd(event, now, effects)
        elif isinstance(event, api.Ack):
            what = self._awaiting_ack.popleft() if self._awaiting_ack else "?"
            if not event.ok:
                self.command_errors.append(what)
                effects.logs.append(f"ExaBGP answered error to: {what}")
        return effects

    def tick(self, now: float) -> Effects:
        """Release held prefixes that have been quiet for a window."""
        effects = Effects()
        window = self.config.flap_window
        for address, state in self.slice_state.items():
            for prefix, last in list(state.held.items()):
                if now - last >= window:
                    del state.held[prefix]
                    effects.logs.append(f"slice {self.slices[address].slice}: {prefix} released by the flap guard")
                    self._export_prefix(address, prefix, effects)
                    effects.urgent = True
        return effects

    def _ensure_up(self, address: str, when: float, now: float, effects: Effects) -> None:
        if self.sessions[address].state != "up":   # only an Established session sends updates
            self._state(api.StateChange(address, "up", "", when), now, effects)

    # -- providers' routes -------------------------------------------------------------
    def _provider_update(self, event: api.Update, now: float, effects: Effects) -> None:
        address = event.peer
        self._ensure_up(address, event.time, now, effects)
        rib = self.ribs[address]
        had_routes = rib.best_count() > 0 if self._default_slices(address) else None
        was_exceeded = rib.stats(address)["max_prefix_exceeded"]
        if event.withdrawn:
            gone = [prefix for prefix, best in rib.withdraw(address, event.withdrawn) if best is None]
            self._to_slices(address, gone, None, effects)
        for routes in event.announced:
            changed = [prefix for prefix, _ in rib.announce(address, routes.prefixes, routes.as_path, routes.length)]
            if changed:
                self._to_slices(address, changed, routes.as_path, effects)
            refused = [p for p in routes.prefixes if rib.best(p) is None]
            if refused:   # own AS or over the limit: a route the provider replaced is gone now
                self._to_slices(address, refused, None, effects)
        if not was_exceeded and rib.stats(address)["max_prefix_exceeded"]:
            neighbor = self.providers[address].neighbor
            effects.logs.append(f"provider {neighbor.name} ({address}) exceeded max-prefix {neighbor.max_prefix}: "
                                "further new prefixes refused, session kept")
            effects.urgent = True
        if had_routes is not None and had_routes != (rib.best_count() > 0):
            self._defaults(address, rib.best_count() > 0, effects)

    def _slice_paths(self, provider_address: str, mode: str):
        """(slice address, slice session, next hop) of the slices whose sessions are up that get
        this provider's routes in `mode`."""
        name = self.providers[provider_address].neighbor.name
        for address, session in self.slices.items():
            if session.provider_routes == mode and name in session.next_hops and self._up(address):
                yield address, session, session.next_hops[name]

    def _default_slices(self, provider_address: str) -> list:
        return list(self._slice_paths(provider_address, "default"))

    def _to_slices(self, provider_address: str, prefixes: list, as_path, effects: Effects) -> None:
        """Pass a provider's changed prefixes (announced with `as_path`, or withdrawn when it is
        None) to the slices taking its full table."""
        if not prefixes:
            return
        provider = self.providers[provider_address]
        for address, session, next_hop in self._slice_paths(provider_address, "full"):
            sent = self.slice_state[address].sent.setdefault(provider.neighbor.name, set())
            if as_path is None:
                prefixes_here = [p for p in prefixes if p in sent]
                sent.difference_update(prefixes_here)
            else:
                prefixes_here = prefixes
                sent.update(prefixes)
            self._path_commands(effects, address, provider, next_hop, as_path, prefixes_here)

    def _path_commands(self, effects: Effects, address: str, provider: ProviderSession, next_hop: str,
                       as_path, prefixes: list) -> None:
        for start in range(0, len(prefixes), NLRI_PER_COMMAND):
            chunk = prefixes[start:start + NLRI_PER_COMMAND]
            routes = api.PathRoutes(address, provider.path_id, next_hop, provider.neighbor.local_pref,
                                    as_path, chunk)
            if self.encodes_paths:   # the helper encodes them: no command of ExaBGP's, no ack
                effects.commands.append(routes)
                continue
            self._send(effects, api.path_command_text(routes), f"{len(chunk)} routes of {provider.neighbor.name} to "
                                                                f"{self.slices[address].slice}")

    def _defaults(self, provider_address: str, on: bool, effects: Effects, only: str | None = None) -> None:
        """Announce (or withdraw) the provider's default route to the slices taking defaults."""
        provider = self.providers[provider_address]
        for address, session, next_hop in self._slice_paths(provider_address, "default"):
            if only is not None and address != only:
                continue
            sent = self.slice_state[address].sent.setdefault(provider.neighbor.name, set())
            if on == (DEFAULT_ROUTE in sent):
                continue
            if on:
                sent.add(DEFAULT_ROUTE)
            else:
                sent.discard(DEFAULT_ROUTE)
            self._path_commands(effects, address, provider, next_hop, (provider.neighbor.peer_as,) if on else None,
                                [DEFAULT_ROUTE])

    def _full_table(self, provider_address: str, slice_address: str, effects: Effects) -> None:
        """A slice's session came up (or a provider's did): send it the provider's table."""
        provider = self.providers[provider_address]
        name = provider.neighbor.name
        session = self.slices[slice_address]
        if name not in session.next_hops:
            return
        rib = self.ribs[provider_address]
        if session.provider_routes == "default":
            self._defaults(provider_address, rib.best_count() > 0, effects, only=slice_address)
            return
        by_path: dict[tuple, list] = {}
        for prefix in rib.best_routes():
            by_path.setdefault(rib.path(provider_address, prefix), []).append(prefix)
        sent = self.slice_state[slice_address].sent.setdefault(name, set())
        for as_path, prefixes in by_path.items():
            sent.update(prefixes)
            self._path_commands(effects, slice_address, provider, session.next_hops[name], as_path, prefixes)

    # -- slices' announcements ---------------------------------------------------------
    def _slice_update(self, event: api.Update, now: float, effects: Effects) -> None:
        address = event.peer
        self._ensure_up(address, event.time, now, effects)
        state = self.slice_state[address]
        withdrawn = list(event.withdrawn)
        for prefixes in event.withdrawn_paths.values():
            withdrawn.extend(prefixes)
        for prefix in withdrawn:
            state.refused.pop(prefix, None)
            if state.announced.pop(prefix, None) is not None:
                self._changed(address, prefix, now, effects)
        for routes in event.announced:
            for prefix in routes.prefixes:
                announcement = Announcement(prefix, len(routes.as_path), tuple(routes.communities))
                reason = self._refusal(address, announcement, routes.as_path)
                if reason is not None:
                    if state.refused.get(prefix) != reason:
                        effects.logs.append(f"slice {self.slices[address].slice}: {prefix} refused: {reason}")
                        effects.urgent = True
                    state.refused[prefix] = reason
                    if state.announced.pop(prefix, None) is not None:
                        self._changed(address, prefix, now, effects)
                    continue
                state.refused.pop(prefix, None)
                if state.announced.get(prefix) != announcement:
                    state.announced[prefix] = announcement
                    self._changed(address, prefix, now, effects)

    def _refusal(self, address: str, announcement: Announcement, as_path) -> str | None:
        foreign = [asn for asn in as_path if asn != self.config.local_as]
        if foreign:
            return f"its AS path holds AS {foreign[0]}: a slice originates routes, it does not transit them"
        return refusal_reason(announcement, self.slices[address].allowed_prefixes)

    def _changed(self, address: str, prefix: str, now: float, effects: Effects) -> None:
        """A slice's prefix changed: count it for the flap guard, then export its new state."""
        state = self.slice_state[address]
        times = state.changes.setdefault(prefix, deque())
        times.append(now)
        window = self.config.flap_window
        while times and now - times[0] > window:
            times.popleft()
        if prefix in state.held:
            state.held[prefix] = now           # still flapping: the hold runs from the last change
            return
        if len(times) > self.config.flap_changes:
            state.held[prefix] = now
            effects.logs.append(f"slice {self.slices[address].slice}: {prefix} held by the flap guard "
                                f"({len(times)} changes in {window:g} s)")
            effects.urgent = True
            self._unexport(address, prefix, effects)
            return
        self._export_prefix(address, prefix, effects)

    def _exports_of(self, slice_address: str):
        """The providers (addresses) a slice egresses through."""
        session = self.slices[slice_address]
        return [self.provider_by_name[name].neighbor.address for name in session.next_hops]

    def _export_prefix(self, slice_address: str, prefix: str, effects: Effects) -> None:
        announcement = self.slice_state[slice_address].announced.get(prefix)
        if announcement is None:
            self._unexport(slice_address, prefix, effects)
            return
        local_as = self.config.local_as
        attributes = ((local_as,) * (1 + announcement.prepend), tuple(announcement.communities))
        for provider in self._exports_of(slice_address):
            exported = self.exported[provider]
            if exported.get(prefix) == attributes:
                continue
            exported[prefix] = attributes
            if self._up(provider):
                self._send(effects, api.export_command(provider, prefix, *attributes),
                           f"announce {prefix} to {self.providers[provider].neighbor.name}")

    def _unexport(self, slice_address: str, prefix: str, effects: Effects) -> None:
        for provider in self._exports_of(slice_address):
            if self.exported[provider].pop(prefix, None) is not None and self._up(provider):
                self._send(effects, api.unexport_command(provider, prefix),
                           f"withdraw {prefix} from {self.providers[provider].neighbor.name}")

    # -- sessions ----------------------------------------------------------------------
    def _state(self, event: api.StateChange, now: float, effects: Effects) -> None:
        address = event.peer
        session = self.sessions.get(address)
        if session is None or event.state == session.state:
            return
        previous = session.state
        session.state, session.since = event.state, now
        if event.state == "down":
            session.reason = event.reason
        name = self._name(address)
        effects.urgent = True
        if event.state == "up":
            effects.logs.append(f"{name} ({address}) up")
            if address in self.providers:
                for prefix, attributes in self.exported[address].items():
                    self._send(effects, api.export_command(address, prefix, *attributes),
                               f"announce {prefix} to {self.providers[address].neighbor.name}")
                for slice_address in self.slices:
                    if self._up(slice_address):
                        self._full_table(address, slice_address, effects)
            else:
                self.slice_state[address].sent = {}
                for provider in self.providers:
                    if self._up(provider):
                        self._full_table(provider, address, effects)
            return
        if previous != "up":
            return
        session.flaps += 1
        effects.logs.append(f"{name} ({address}) down: {event.reason or event.state}")
        if address in self.providers:
            rib = self.ribs[address]
            gone = [prefix for prefix, best in rib.peer_down(address) if best is None]
            self._to_slices(address, gone, None, effects)
            self._defaults(address, False, effects)
        else:
            state = self.slice_state[address]
            state.sent = {}
            for prefix in list(state.announced):
                del state.announced[prefix]
                self._changed(address, prefix, now, effects)
            state.refused.clear()

    def _bfd(self, event, now: float, effects: Effects) -> None:
        """A BFD event: a failed provider's session is dropped now (its paths withdrawn from
        the slices as on any session drop), then torn down in ExaBGP."""
        effects.urgent = True   # the status shows BFD
        change = self.bfd.apply(event, now)
        if change is None or change[1].address not in self.providers:
            return
        what, session = change
        name, address = self._name(session.address), session.address
        if what == "restored":
            effects.logs.append(f"{name} ({address}): BFD up again")
            return
        reason = f"BFD down ({diagnostic_text(session.diagnostic)})"
        effects.logs.append(f"{name} ({address}): {reason}: dropping its session")
        self._state(api.StateChange(address, "down", reason, now), now, effects)
        self._send(effects, teardown_command(address), f"teardown of {name} ({reason})")

    def _name(self, address: str) -> str:
        if address in self.providers:
            return f"provider {self.providers[address].neighbor.name}"
        return f"slice {self.slices[address].slice}"

    def stop(self, now: float, reason: str = "border stopped") -> Effects:
        effects = Effects(urgent=True)
        for address in self.sessions:
            self._state(api.StateChange(address, "down", reason, now), now, effects)
        effects.commands.clear()   # ExaBGP is going away with the sessions
        self._awaiting_ack.clear()
        return effects

    # -- status ------------------------------------------------------------------------
    def status(self, now: float) -> dict:
        neighbors = {}
        for address, provider in self.providers.items():
            entry = self._session_entry(address, provider.neighbor, now)
            stats = self.ribs[address].stats(address)
            entry.update(kind="provider", path_id=provider.path_id, local_pref=provider.neighbor.local_pref,
                         max_prefix=provider.neighbor.max_prefix, **stats,
                         prefixes_in=stats["accepted"], prefixes_out=len(self.exported[address]) if self._up(address) else 0,
                         exported=sorted(self.exported[address]), bfd=self.bfd.status(address, now))
            neighbors[provider.neighbor.name] = entry
        refused, held = [], []
        for address, session in self.slices.items():
            state = self.slice_state[address]
            entry = self._session_entry(address, session.neighbor, now)
            slice_refused = [{"slice": session.slice, "prefix": p, "reason": r} for p, r in sorted(state.refused.items())]
            slice_held = [{"slice": session.slice, "prefix": p, "since": t,
                           "until": t + self.config.flap_window} for p, t in sorted(state.held.items())]
            entry.update(kind="slice", slice=session.slice, provider_routes=session.provider_routes,
                         prefixes_in=len(state.announced), refused=slice_refused, held=slice_held,
                         prefixes_out=sum(len(s) for s in state.sent.values()),
                         paths={name: len(prefixes) for name, prefixes in sorted(state.sent.items())},
                         announced=sorted(state.announced))
            neighbors[f"slice {session.slice}"] = entry
            refused += slice_refused
            held += slice_held
        return {
            "role": "border", "slice": "border", "node": self.config.node, "local_as": self.config.local_as,
            "router_id": self.config.router_id, "started": self.started, "updated": now,
            "neighbors": neighbors, "refused": refused, "held": held,
            "command_errors": list(self.command_errors),
            "flap_guard": {"changes": self.config.flap_changes, "window": self.config.flap_window},
        }

    def _session_entry(self, address: str, neighbor, now: float) -> dict:
        session = self.sessions[address]
        return {"name": neighbor.name, "address": address, "peer_as": neighbor.peer_as,
                "state": session.state, "since": session.since,
                "uptime": round(now - session.since, 3) if session.state == "up" else 0.0,
                "last_down_reason": session.reason, "flaps": session.flaps}
