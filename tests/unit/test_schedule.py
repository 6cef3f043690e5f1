"""schedule(steps): batches in an order the kernel accepts, made before they are broken.

The property (see compiler/schedule.py): for every step sequence the scheduler emits on a
link change, replayed on a model of each namespace's routing tables (longest-prefix match,
tests/unit/fib_sim.py), an address routed before and after the change is forwarded by its
old route until its new one takes over, and by the new one from then on — never by no
route, never by a third. Checked for every link of Abilene (down, and back up), of a ring
and of a grid, and for a cost change; and the check is shown to catch the order the
scheduler had before (every deletion before any creation)."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from compiler.context import ControllerState
from compiler.diff import Step, diff
from compiler.links import link_down_ends
from compiler.loader import load_topology
from compiler.planner import compile_plan
from compiler.resources import Address, Macvlan, Neighbour, Route, RoutingRule
from compiler.schedule import schedule
from fib_sim import replay
from unit_helpers import ABILENE, abilene_full_text, topology


def link_change(topo, healthy, key: tuple[str, str], down: bool):
    """(plan before, plan after, steps) of `vispd link down|up` (vispd/linkstate.py: the link's
    two ends are applied on their own first, the rest is diffed and scheduled)."""
    failed = compile_plan(topo, state=ControllerState(failed_links=frozenset({key})))
    before, after = (healthy, failed) if down else (failed, healthy)
    done = {r.key for r in link_down_ends(topo, key)}
    return before, after, [s for s in diff(before.resources, after.resources) if s.resource.key not in done]


def assert_made_before_broken(before, after, steps) -> list[tuple[str, list[Step]]]:
    batches = schedule(steps)
    assert Counter(id(s) for _, b in batches for s in b) == Counter(id(s) for s in steps)  # each step once
    violations = replay(before.resources, after.resources, batches)
    assert not violations, "\n".join(str(v) for v in violations[:10])
    return batches


@pytest.fixture(scope="module")
def abilene_full():
    topo = load_topology(ABILENE, abilene_full_text())  # with providers: border routes in tables too
    return topo, compile_plan(topo)


def ring_text(nodes: int) -> str:
    names = [f"r{i:02d}" for i in range(nodes)]
    links = "".join(f"  - {{between: [{names[i]}, {names[(i + 1) % nodes]}], bandwidth: 1G, cost: {1 + i % 3}}}\n"
                    for i in range(nodes))
    return (f"name: ring\nasn: 64512\naddress-space: [10.0.0.0/12]\n"
            f"nodes: [{', '.join('{name: %s}' % n for n in names)}]\nlinks:\n{links}"
            "slices:\n"
            "  - {name: a, bandwidth: 10M, prefix-length: 20,\n"
            "     pseudo-devices: [{node: r03, type: tun, name: a0}, {node: r07, type: tap, name: a1}]}\n"
            f"  - {{name: b, bandwidth: 10M, nodes: [{', '.join(names[: nodes // 2 + 2])}], links: all}}\n")


def grid_text(rows: int, columns: int) -> str:
    name = [[f"g{r}x{c}" for c in range(columns)] for r in range(rows)]
    links = [f"  - {{between: [{name[r][c]}, {name[r][c + 1]}], bandwidth: 1G, cost: 1}}\n"
             for r in range(rows) for c in range(columns - 1)]
    links += [f"  - {{between: [{name[r][c]}, {name[r + 1][c]}], bandwidth: 1G, cost: 1}}\n"
              for r in range(rows - 1) for c in range(columns)]
    return (f"name: grid\nasn: 64512\naddress-space: [10.0.0.0/12]\n"
            f"nodes: [{', '.join('{name: %s}' % n for row in name for n in row)}]\nlinks:\n{''.join(links)}"
            "slices:\n  - {name: a, bandwidth: 10M, pseudo-devices: [{node: g1x1, type: tun, name: a0}]}\n")


# -- the property ----------------------------------------------------------------------------------
@pytest.mark.parametrize("down", [True, False], ids=["down", "up"])
def test_every_abilene_link_change_keeps_every_route_until_its_replacement(abilene_full, down):
    topo, healthy = abilene_full
    recut = 0
    for link in topo.links:
        before, after, steps = link_change(topo, healthy, link.key, down)
        assert_made_before_broken(before, after, steps)
        recut += sum(1 for s in steps if s.action == "delete" and isinstance(s.resource, Route))
    assert recut > 100  # aggregated routes are re-cut, not only replaced: the case that matters


@pytest.mark.parametrize("text", [ring_text(12), grid_text(4, 4)], ids=["ring", "grid"])
def test_every_link_failure_of_a_ring_and_a_grid_keeps_every_route(text):
    topo = topology(text)
    healthy = compile_plan(topo)
    for link in topo.links:
        for down in (True, False):
            assert_made_before_broken(*link_change(topo, healthy, link.key, down))


def test_a_cost_change_keeps_every_route():
    text = abilene_full_text()
    old = "{between: [seattle, denver],           bandwidth: 1G, cost: 16, delay: geo}"
    assert old in text
    before = compile_plan(load_topology(ABILENE, text))
    after = compile_plan(load_topology(ABILENE, text.replace(old, old.replace("cost: 16", "cost: 60"))))
    assert_made_before_broken(before, after, diff(before.resources, after.resources))


def test_the_replay_catches_every_deletion_before_any_creation(abilene_full):
    """The order before make-before-break: on seattle-denver down, addresses whose path never
    changed lose their route between the deletions and the creations."""
    topo, healthy = abilene_full
    before, after, steps = link_change(topo, healthy, ("denver", "seattle"), down=True)
    deletions_first = [("removals", [s for s in steps if s.action == "delete"]),
                       ("changes", [s for s in steps if s.action != "delete"])]
    lost = [v for v in replay(before.resources, after.resources, deletions_first) if v.seen is None]
    assert any(v.old == v.new for v in lost)  # including addresses whose way did not change
    assert not replay(before.resources, after.resources, schedule(steps))


def test_each_node_makes_its_routes_most_specific_first_then_breaks_least_specific_first(abilene_full):
    topo, healthy = abilene_full
    _, _, steps = link_change(topo, healthy, ("denver", "seattle"), down=True)
    batches = schedule(steps)
    made = [s for _, b in batches for s in b if isinstance(s.resource, Route) and s.action != "delete"]
    broken = [s for _, b in batches for s in b if isinstance(s.resource, Route) and s.action == "delete"]
    assert made and broken
    for node in {name for name, _ in batches if name.startswith("node ")}:
        mine = [i for i, (name, _) in enumerate(batches) if name == node]
        assert mine == list(range(mine[0], mine[-1] + 1))  # a node makes, then breaks at once
        kinds = [batches[i][1][0].action == "delete" for i in mine]
        assert kinds == sorted(kinds), node  # every creation of the node before any removal
    for name, batch in batches:
        lengths = [int(s.resource.dst.split("/")[1]) for s in batch if isinstance(s.resource, Route)]
        if batch[0].action == "delete":
            assert lengths == sorted(lengths), name
        else:
            assert lengths == sorted(lengths, reverse=True), name


# -- which removals wait -----------------------------------------------------------------------------
def _names(batches):
    return [(name, [(s.action, s.resource.KIND) for s in steps]) for name, steps in batches]


def test_routes_rules_neighbours_wait_and_each_phase_is_a_batch_of_its_own():
    route = Route(node="n", ns="ns", dst="10.0.0.0/24", gateway="10.1.0.1", ifname="v-x", prefsrc="10.2.0.1")
    rule = RoutingRule(node="n", ns="ns", iif="v-x", table=100, priority=1000)
    neighbour = Neighbour(node="n", ns="ns", ifname="v-x", ip="10.1.0.1", mac="02:00:00:00:00:01")
    new_route = dataclasses.replace(route, dst="10.0.0.0/23")
    steps = [Step("delete", route), Step("delete", rule), Step("delete", neighbour), Step("create", new_route)]
    batches = [(name, sorted(steps)) for name, steps in _names(schedule(steps))]
    assert batches == [
        ("node n", [("create", "route")]),
        ("node n", [("delete", "route"), ("delete", "rule")]),  # phase 5
        ("node n", [("delete", "neighbour")]),  # phase 3: after the routes that use it
    ]


def test_an_address_waits_unless_a_new_one_on_its_device_shares_its_subnet():
    old = Address(node="n", ns="ns", ifname="v-x", cidr="10.1.0.0/31")
    elsewhere = Address(node="n", ns="ns", ifname="v-x", cidr="10.1.0.2/31")
    assert _names(schedule([Step("delete", old), Step("create", elsewhere)])) == [
        ("node n", [("create", "address")]), ("node n", [("delete", "address")])]
    # 10.1.0.1/31 would be the secondary of 10.1.0.0/31, and go when the primary goes
    same_subnet = dataclasses.replace(elsewhere, cidr="10.1.0.1/31")
    assert _names(schedule([Step("delete", old), Step("create", same_subnet)])) == [
        ("node n", [("delete", "address")]), ("node n", [("create", "address")])]
    # on another device, the same subnet is no collision
    other_device = dataclasses.replace(same_subnet, ifname="v-y")
    assert _names(schedule([Step("delete", old), Step("create", other_device)]))[0][1] == [("create", "address")]


def test_a_device_is_still_removed_before_it_is_made_again():
    old = Macvlan(node="n", ns="ns", ifname="v-x", lower_ns="node", lower_ifname="to-x", mac="02:00:00:00:00:01")
    new = dataclasses.replace(old, mtu=1400)
    assert _names(schedule([Step("delete", old), Step("create", new)])) == [
        ("node n", [("delete", "macvlan")]), ("node n", [("create", "macvlan")])]


def test_overlapping_routes_are_made_most_specific_first_and_broken_least_specific_first():
    """A sliver's own routes never overlap (exact covers), but a table may hold nested
    prefixes: then the order of the routes matters, and key order would be wrong both ways
    ('10.0.0.0/12' sorts before '10.0.0.0/24', '10.0.0.0/16' before '10.0.0.0/8')."""
    def route(dst, gateway):
        return Route(node="n", ns="ns", dst=dst, gateway=gateway, ifname="v-x", prefsrc="10.9.0.1")

    old = [route("10.0.0.0/7", "10.8.0.1")]
    new = [route("10.0.0.0/12", "10.8.0.2"), route("10.0.0.0/24", "10.8.0.3")]
    making = [Step("create", r) for r in new]
    assert replay(old, new, [("key order", making), ("break", [Step("delete", old[0])])])  # 10.0.0.1 via the /12
    assert not replay(old, new, schedule(making + [Step("delete", old[0])]))
    old, new = [route("10.0.0.0/8", "10.8.0.1"), route("10.0.0.0/16", "10.8.0.2")], [route("10.0.0.0/7", "10.8.0.3")]
    breaking = [Step("delete", r) for r in sorted(old, key=lambda r: r.dst)]
    assert replay(old, new, [("make", [Step("create", new[0])]), ("key order", breaking)])
    assert not replay(old, new, schedule([Step("create", new[0])] + breaking))
