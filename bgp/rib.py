"""The speaker's routing table: one Adj-RIB-In per neighbour, import rules (drop paths that
contain our own AS, cap each neighbour at its max-prefix) and best-path selection across
neighbours. Pure: every call returns the prefixes whose best neighbour changed, as
`(prefix, neighbour address or None)`, which the helper turns into FIB operations.

A change is also reported when the best neighbour stays but its path's length changes (the
speaker's FIB metric carries the best path's preference: see bgp/speaker.py).

Best path: higher local_pref (per neighbour, from the config), then shorter AS path, then the
lower neighbour address. Max-prefix: once a neighbour holds max_prefix accepted prefixes, new
prefixes from it are refused (updates of prefixes it already holds still apply) and the
neighbour is flagged until its session goes down; no session is ever torn down and no other
neighbour is affected. Refused prefixes are remembered only by name (for the `received`
count), so a later withdrawal of an accepted prefix does not re-admit them."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Change = tuple[str, "str | None"]   # (prefix, best neighbour address, None = no route)


@dataclass(frozen=True)
class PeerPolicy:
    address: str
    local_pref: int = 100
    max_prefix: int | None = None


@dataclass
class _Peer:
    policy: PeerPolicy
    order: tuple            # tie-break key: lower address wins
    routes: dict = field(default_factory=dict)        # prefix -> (path length, AS path)
    own_as: set = field(default_factory=set)          # prefixes refused: AS path has our AS
    over_limit: set = field(default_factory=set)      # prefixes refused: beyond max_prefix
    max_prefix_exceeded: bool = False


class Rib:
    def __init__(self, local_as: int, peers):
        self.local_as = local_as
        self._peers: dict[str, _Peer] = {}
        for policy in peers:
            order = (-policy.local_pref, int(ipaddress.IPv4Address(policy.address)))
            self._peers[policy.address] = _Peer(policy, order)
        self._best: dict[str, str] = {}      # prefix -> neighbour address

    # -- queries -----------------------------------------------------------------------
    def best(self, prefix: str) -> str | None:
        return self._best.get(prefix)

    def best_routes(self) -> dict[str, str]:
        return dict(self._best)

    def best_count(self) -> int:
        """How many prefixes have a best route (without copying the table)."""
        return len(self._best)

    def best_length(self, prefix: str) -> int:
        """The best path's length (0 when there is none)."""
        address = self._best.get(prefix)
        return 0 if address is None else self._peers[address].routes[prefix][0]

    def local_pref(self, address: str) -> int:
        return self._peers[address].policy.local_pref

    def path(self, address: str, prefix: str) -> tuple | None:
        """The AS path the neighbour sent for the prefix, if accepted."""
        entry = self._peers[address].routes.get(prefix)
        return None if entry is None else entry[1]

    def stats(self, address: str) -> dict:
        peer = self._peers[address]
        accepted = len(peer.routes)
        return {
            "received": accepted + len(peer.own_as) + len(peer.over_limit),
            "accepted": accepted,
            "refused_own_as": len(peer.own_as),
            "refused_max_prefix": len(peer.over_limit),
            "max_prefix_exceeded": peer.max_prefix_exceeded,
        }

    # -- selection ---------------------------------------------------------------------
    def _select(self, prefix: str) -> str | None:
        best = None
        best_key = None
        for address, peer in self._peers.items():
            entry = peer.routes.get(prefix)
            if entry is None:
                continue
            key = (peer.order[0], entry[0], peer.order[1])
            if best_key is None or key < best_key:
                best, best_key = address, key
        return best

    def _reselect(self, prefix: str, changes: list) -> None:
        new = self._select(prefix)
        old = self._best.get(prefix)
        if new == old:
            return
        if new is None:
            del self._best[prefix]
        else:
            self._best[prefix] = new
        changes.append((prefix, new))

    # -- updates -----------------------------------------------------------------------
    def announce(self, address: str, prefixes, as_path, path_length: int | None = None) -> list[Change]:
        """The neighbour advertises `prefixes` with one AS path (every ASN in it, in order);
        `path_length` is its length for selection (an AS_SET counts 1), default len(as_path)."""
        peer = self._peers[address]
        as_path = tuple(as_path)
        entry = (len(as_path) if path_length is None else path_length, as_path)
        changes: list[Change] = []
        if self.local_as in as_path:
            for prefix in prefixes:
                peer.over_limit.discard(prefix)
                peer.own_as.add(prefix)
                if peer.routes.pop(prefix, None) is not None:   # implicit withdrawal
                    self._reselect(prefix, changes)
            return changes
        routes = peer.routes
        limit = peer.policy.max_prefix
        for prefix in prefixes:
            if prefix not in routes:
                if limit is not None and len(routes) >= limit:
                    peer.max_prefix_exceeded = True
                    peer.own_as.discard(prefix)
                    peer.over_limit.add(prefix)
                    continue
                peer.own_as.discard(prefix)
                peer.over_limit.discard(prefix)
            previous = routes.get(prefix)
            routes[prefix] = entry
            old = self._best.get(prefix)
            if old is None and len(self._peers) == 1:      # fast path: the only neighbour
                self._best[prefix] = address
                changes.append((prefix, address))
            else:
                before = len(changes)
                self._reselect(prefix, changes)
                if len(changes) == before and old == address and previous is not None \
                        and previous[0] != entry[0]:
                    changes.append((prefix, address))   # same neighbour, another length
        return changes

    def withdraw(self, address: str, prefixes) -> list[Change]:
        peer = self._peers[address]
        changes: list[Change] = []
        for prefix in prefixes:
            peer.own_as.discard(prefix)
            peer.over_limit.discard(prefix)
            if peer.routes.pop(prefix, None) is not None:
                self._reselect(prefix, changes)
        return changes

    def peer_down(self, address: str) -> list[Change]:
        """Forget everything the neighbour sent; its flags reset for the next session."""
        peer = self._peers[address]
        routes = peer.routes
        peer.routes = {}
        peer.own_as = set()
        peer.over_limit = set()
        peer.max_prefix_exceeded = False
        changes: list[Change] = []
        for prefix in routes:
            if self._best.get(prefix) == address:
                self._reselect(prefix, changes)
        return changes
