"""The speaker's RIB (bgp.rib): best path across neighbours, own-AS loop rejection,
per-neighbour max-prefix, withdrawal on session loss; only changes of the best path (its
neighbour, or its length: the FIB metric carries it) are reported."""
from __future__ import annotations

from bgp.rib import PeerPolicy, Rib

A, B, C = "192.0.2.0", "192.0.2.2", "192.0.2.4"
P, Q, R = "10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"
US = 64512


def rib(*peers: PeerPolicy) -> Rib:
    return Rib(US, peers or (PeerPolicy(A),))


def test_single_neighbor_announce_update_withdraw():
    table = rib()
    assert table.announce(A, [P, Q], [65101]) == [(P, A), (Q, A)]
    assert table.announce(A, [P], [65101, 65000]) == [(P, A)]    # same neighbour, longer: new metric
    assert table.announce(A, [P], [65101, 65001]) == []          # same neighbour, same length: nothing
    assert table.path(A, P) == (65101, 65001)
    assert table.best_length(P) == 2 and table.best_length(R) == 0
    assert table.withdraw(A, [P, R]) == [(P, None)]               # R was never there
    assert table.best_routes() == {Q: A}


def test_higher_local_pref_then_shorter_path_then_lower_address():
    table = rib(PeerPolicy(A, local_pref=100), PeerPolicy(B, local_pref=200), PeerPolicy(C, local_pref=100))
    assert table.announce(A, [P], [1]) == [(P, A)]
    assert table.announce(B, [P], [1, 2, 3, 4]) == [(P, B)]       # local_pref beats length
    assert table.withdraw(B, [P]) == [(P, A)]
    assert table.announce(C, [P], [7]) == []                      # equal: lower address A stays
    assert table.announce(A, [P], [1, 2]) == [(P, C)]             # A's path grew: C is shorter
    assert table.announce(A, [P], [3]) == [(P, A)]


def test_as_set_counts_once_via_path_length():
    table = rib(PeerPolicy(A), PeerPolicy(B))
    table.announce(A, [P], [1, 2], path_length=2)
    assert table.announce(B, [P], [5, 6, 7], path_length=1) == [(P, B)]


def test_paths_with_our_as_are_dropped_and_replace_an_earlier_path():
    table = rib(PeerPolicy(A), PeerPolicy(B))
    assert table.announce(A, [P, Q], [65101, US, 65000]) == []
    assert table.stats(A)["refused_own_as"] == 2 and table.stats(A)["accepted"] == 0
    table.announce(A, [R], [65101])
    table.announce(B, [R], [65102, 65000])
    assert table.best(R) == A
    assert table.announce(A, [R], [65101, US]) == [(R, B)]        # implicit withdrawal of A's path
    assert table.stats(A) == {"received": 3, "accepted": 0, "refused_own_as": 3,
                              "refused_max_prefix": 0, "max_prefix_exceeded": False}
    assert table.withdraw(A, [P]) == [] and table.stats(A)["received"] == 2


def test_max_prefix_caps_new_prefixes_of_one_neighbor_only():
    table = rib(PeerPolicy(A, max_prefix=2), PeerPolicy(B, max_prefix=10))
    changes = table.announce(A, [P, Q, R, "10.4.0.0/24"], [65101])
    assert changes == [(P, A), (Q, A)]
    stats = table.stats(A)
    assert stats == {"received": 4, "accepted": 2, "refused_own_as": 0, "refused_max_prefix": 2,
                     "max_prefix_exceeded": True}
    assert table.announce(A, [P], [65101, 1]) == [(P, A)]         # updates of held prefixes still apply
    assert table.path(A, P) == (65101, 1)
    assert table.announce(B, [R, "10.5.0.0/24"], [65102]) == [(R, B), ("10.5.0.0/24", B)]
    assert table.stats(B)["max_prefix_exceeded"] is False
    # a withdrawal frees room for a later new prefix, the flag stays for the session
    table.withdraw(A, [Q])
    assert table.announce(A, ["10.9.0.0/24"], [65101]) == [("10.9.0.0/24", A)]
    assert table.stats(A)["max_prefix_exceeded"] is True


def test_peer_down_withdraws_and_reselects_from_the_others():
    table = rib(PeerPolicy(A), PeerPolicy(B, max_prefix=1))
    table.announce(A, [P, Q], [1])
    table.announce(B, [P, R], [2, 3])                            # R refused by B's max-prefix
    assert table.best(P) == A
    assert sorted(table.peer_down(A)) == [(P, B), (Q, None)]
    assert table.best_routes() == {P: B}
    assert table.peer_down(B) == [(P, None)]
    assert table.stats(B) == {"received": 0, "accepted": 0, "refused_own_as": 0,
                              "refused_max_prefix": 0, "max_prefix_exceeded": False}
    assert table.best_routes() == {}


def test_unlimited_when_max_prefix_is_none():
    table = rib(PeerPolicy(A, max_prefix=None))
    prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(5000)]
    assert len(table.announce(A, prefixes, [65101])) == 5000
    assert table.stats(A)["max_prefix_exceeded"] is False
