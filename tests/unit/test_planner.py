"""Properties of the compiled plan of topologies/abilene.yaml (and of awkward names)."""
from __future__ import annotations

from collections import Counter, defaultdict
from ipaddress import ip_address, ip_network


from routing_oracle import addresses_of, routed_addresses
from unit_helpers import topology
from compiler.addressing import allocate_slice_prefixes
from model.naming import IFNAMSIZ
from compiler.resources import (
    Address,
    Device,
    IsolationFilter,
    Macvlan,
    Neighbour,
    Netns,
    Route,
    Shaping,
    TunTap,
    Veth,
)
from compiler.planner import compile_plan

T = "vispd.abilene."
RESEARCH = ["denver", "kansas-city", "houston", "chicago", "indianapolis", "atlanta", "washington", "new-york"]


def of(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


def test_resource_counts(abilene_plan):
    counts = Counter(type(r).__name__ for r in abilene_plan.resources)
    assert counts == {
        "Netns": 11 + 11 + 8,      # nodes, plb slivers, research slivers
        "Veth": 14,                # one per substrate link
        "Macvlan": 2 * 14 + 2 * 9,  # both ends of each virtual link (research spans 9 links)
        "TunTap": 2,
        "Address": 19 + 46 + 2,    # loopbacks, virtual link ends, pseudo-devices
        "Neighbour": 46,
        "Shaping": 28,             # each end of each substrate link
        "IsolationFilter": 11,
        "Route": 93 + 41,          # 130 + 56 targets (loopbacks, pseudo-devices), aggregated per next hop
    }
    assert len({r.key for r in abilene_plan.resources}) == len(abilene_plan.resources)


def test_namespaces(abilene_plan):
    roles = Counter((r.role, r.slice) for r in of(abilene_plan, Netns))
    assert roles == {("node", None): 11, ("sliver", "plb"): 11, ("sliver", "research"): 8}
    research = sorted(r.ns for r in of(abilene_plan, Netns) if r.slice == "research")
    assert research == sorted(f"{T}{n}.research" for n in RESEARCH)


def test_routes_per_sliver(abilene_plan):
    routed = defaultdict(set)  # ns -> the addresses its routes cover
    for route in of(abilene_plan, Route):
        routed[route.ns] |= routed_addresses([route])
    for node in ("seattle", "new-york"):  # each hosts one of plb's two pseudo-devices (a /30)
        assert len(routed[f"{T}{node}.plb"]) == 10 + 4
    assert len(routed[f"{T}denver.plb"]) == 10 + 2 * 4
    for node in RESEARCH:
        assert len(routed[f"{T}{node}.research"]) == 7
    assert f"{T}seattle.research" not in routed


def test_every_sliver_reaches_every_other_sliver_and_pseudo_device(abilene_plan):
    neighbours = {(r.ns, r.ifname, r.ip) for r in of(abilene_plan, Neighbour)}
    interfaces = {(r.ns, r.ifname) for r in of(abilene_plan, Macvlan)}
    for sl in ("plb", "research"):
        slivers = [s for s in abilene_plan.slivers if s.slice == sl]
        for sliver in slivers:
            routes = [r for r in of(abilene_plan, Route) if r.ns == sliver.ns]
            wanted = {f"{o.loopback}/32" for o in slivers if o is not sliver}
            wanted |= {subnet for o in slivers if o is not sliver for _, _, subnet in o.pseudo_devices}
            assert routed_addresses(routes) == addresses_of(*wanted), sliver.ns  # exactly these, aggregated
            for route in routes:
                assert (route.ns, route.ifname) in interfaces
                assert (route.ns, route.ifname, route.gateway) in neighbours  # a real next hop
                assert route.prefsrc == sliver.loopback


def test_slices_stay_inside_their_prefixes(abilene, abilene_plan):
    prefixes = allocate_slice_prefixes(abilene)
    slice_of = {r.ns: r.slice for r in of(abilene_plan, Netns) if r.role == "sliver"}
    for resource in abilene_plan.resources:
        if resource.ns not in slice_of:
            continue
        prefix = prefixes[slice_of[resource.ns]]
        if isinstance(resource, Address):
            assert ip_network(resource.cidr, strict=False).subnet_of(prefix), resource
        if isinstance(resource, Route):
            assert ip_network(resource.dst).subnet_of(prefix) and ip_address(resource.gateway) in prefix
        if isinstance(resource, Neighbour):
            assert ip_address(resource.ip) in prefix


def test_neighbours_carry_the_peer_macvlan_mac(abilene_plan):
    by_address = {}
    for sliver in abilene_plan.slivers:
        for ifname, cidr, mac in sliver.interfaces:
            by_address[(sliver.slice, cidr.split("/")[0])] = mac
    slice_of = {s.ns: s.slice for s in abilene_plan.slivers}
    for neighbour in of(abilene_plan, Neighbour):
        assert neighbour.mac == by_address[(slice_of[neighbour.ns], neighbour.ip)]


def test_macs_unique_per_substrate_device_and_locally_administered(abilene_plan):
    per_lower = defaultdict(list)
    for mv in of(abilene_plan, Macvlan):
        per_lower[(mv.lower_ns, mv.lower_ifname)].append(mv.mac)
        assert int(mv.mac.split(":")[0], 16) & 0b11 == 0b10  # unicast, locally administered
    assert len(per_lower) == 28
    for macs in per_lower.values():
        assert len(macs) == len(set(macs))
    all_macs = [mv.mac for mv in of(abilene_plan, Macvlan)]
    assert len(all_macs) == len(set(all_macs))


def test_macvlans_sit_on_the_substrate_veth_ends(abilene_plan):
    ends = set()
    for veth in of(abilene_plan, Veth):
        ends |= {(veth.ns, veth.ifname), (veth.peer_ns, veth.peer_ifname)}
    assert len(ends) == 28
    assert {(mv.lower_ns, mv.lower_ifname) for mv in of(abilene_plan, Macvlan)} == ends


def test_shaping_classes_are_slice_guarantees_under_link_capacity(abilene_plan):
    research_links = {("denver", "kansas-city"), ("kansas-city", "houston"), ("kansas-city", "indianapolis"),
                      ("houston", "atlanta"), ("atlanta", "indianapolis"), ("atlanta", "washington"),
                      ("indianapolis", "chicago"), ("chicago", "new-york"), ("new-york", "washington")}
    macs = {(mv.lower_ns, mv.lower_ifname, mv.ns.rsplit(".", 1)[1]): mv.mac for mv in of(abilene_plan, Macvlan)}
    veth_peer = {}
    for veth in of(abilene_plan, Veth):
        a, b = veth.ns[len(T):], veth.peer_ns[len(T):]
        veth_peer[(veth.ns, veth.ifname)] = b
        veth_peer[(veth.peer_ns, veth.peer_ifname)] = a
    shaped = of(abilene_plan, Shaping)
    assert len(shaped) == 28
    for shaping in shaped:
        assert shaping.capacity == 10**9
        rates = {c.label: (c.rate, c.ceil) for c in shaping.classes}
        pair = (shaping.ns[len(T):], veth_peer[(shaping.ns, shaping.ifname)])
        on_research = pair in research_links or pair[::-1] in research_links
        expected = {"plb": (500 * 10**6, 10**9)}
        if on_research:
            expected["research"] = (200 * 10**6, 10**9)
        assert rates == expected, pair
        assert len({c.classid for c in shaping.classes}) == len(shaping.classes)
        for cls in shaping.classes:
            assert cls.macs == (macs[(shaping.ns, shaping.ifname, cls.label)],)


def test_isolation_filter_admits_only_same_slice_pairs(abilene_plan):
    slice_of_mac = {mv.mac: mv.ns.rsplit(".", 1)[1] for mv in of(abilene_plan, Macvlan)}
    filters = {f.ns: f for f in of(abilene_plan, IsolationFilter)}
    assert len(filters) == 11
    assert filters[f"{T}seattle"].devices == ("to-dnvr", "to-snva")
    for flt in filters.values():
        assert flt.pairs
        for src, dst in flt.pairs:
            assert slice_of_mac[src] == slice_of_mac[dst]


def test_pseudo_devices_belong_to_the_slice_user(abilene_plan):
    taps = {r.ifname: r for r in of(abilene_plan, TunTap)}
    assert set(taps) == {"plb0", "plbtap0"}
    assert (taps["plb0"].ns, taps["plb0"].mode) == (f"{T}seattle.plb", "tun")
    assert (taps["plbtap0"].ns, taps["plbtap0"].mode) == (f"{T}new-york.plb", "tap")
    plb_uid = abilene_plan.sliver("plb", "seattle").uid
    assert taps["plb0"].uid == taps["plb0"].gid == plb_uid
    assert abilene_plan.sliver("research", "denver").uid != plb_uid


def test_each_node_part_lives_in_that_nodes_namespaces(abilene_plan):
    parts = 0
    for node in ("seattle", "kansas-city", "new-york"):
        part = abilene_plan.for_node(node)
        parts += len(part)
        assert part and all(r.ns == f"{T}{node}" or r.ns.startswith(f"{T}{node}.") for r in part)
    covered = sum(len(abilene_plan.for_node(n)) for n in {r.node for r in abilene_plan.resources})
    assert covered == len(abilene_plan.resources)


def test_interface_names_fit_ifnamsiz(abilene_plan):
    for device in of(abilene_plan, Device):
        assert len(device.ifname) <= IFNAMSIZ
    ends = {(v.ns, v.ifname) for v in of(abilene_plan, Veth)} | {(v.peer_ns, v.peer_ifname) for v in of(abilene_plan, Veth)}
    assert {(f"{T}denver", "to-sttl"), (f"{T}seattle", "to-dnvr")} <= ends


def test_long_node_names_without_site_codes_get_short_unique_interface_names():
    long_a = "a" * 30 + "1"                  # 31 characters, the longest name allowed
    long_b = "a" * 30 + "2"                  # same first 30 characters
    long_c = "abcdefghij-klmnopqrstu-vwxyz-01"
    assert len(long_a) == len(long_c) == 31
    plan = compile_plan(topology(f"""\
        name: longnames-topo1
        asn: 64512
        address-space: [10.0.0.0/16]
        nodes: [{{name: {long_a}}}, {{name: {long_b}}}, {{name: {long_c}}}, {{name: x}}]
        links:
          - {{between: [{long_a}, {long_b}], bandwidth: 1G}}
          - {{between: [{long_b}, {long_c}], bandwidth: 1G}}
          - {{between: [{long_c}, {long_a}], bandwidth: 1G}}
          - {{between: [x, {long_a}], bandwidth: 1G}}
          - {{between: [x, {long_b}], bandwidth: 1G}}
        slices:
          - {{name: s-sixteen-chars1, bandwidth: 1M, pseudo-devices: [{{node: {long_a}, type: tap}}]}}
          - {{name: t, bandwidth: 1M}}
    """))
    names_per_ns = defaultdict(list)
    for device in of(plan, Device):
        assert len(device.ifname) <= IFNAMSIZ, device.ifname
        names_per_ns[device.ns].append(device.ifname)
        if isinstance(device, Veth):
            assert len(device.peer_ifname) <= IFNAMSIZ
            names_per_ns[device.peer_ns].append(device.peer_ifname)
    for ns, names in names_per_ns.items():
        assert len(names) == len(set(names)), ns
    node_a = names_per_ns[f"vispd.longnames-topo1.{long_a}"]
    assert len(node_a) == 3 and all(n.startswith("to-") for n in node_a)
    assert "to-x" in node_a


def test_sliver_sysctls_allow_unprivileged_ping(abilene_plan):
    for sliver in abilene_plan.slivers:
        netns = next(r for r in of(abilene_plan, Netns) if r.ns == sliver.ns)
        assert ("net.ipv4.ping_group_range", f"{sliver.gid} {sliver.gid}") in netns.sysctls
        assert ("net.ipv4.ip_forward", "1") in netns.sysctls


def test_removing_a_slice_keeps_the_other_slices_uid_and_class(abilene_plan):
    from unit_helpers import ABILENE, abilene_text
    from compiler.loader import load_topology

    text = abilene_text()
    start, end = text.index("  # PLB: the reference"), text.index("  # A research vISP")
    without = compile_plan(load_topology(ABILENE, text[:start] + text[end:]))
    assert without.sliver("research", "denver").uid == abilene_plan.sliver("research", "denver").uid
    classid = lambda plan: {c.classid for s in of(plan, Shaping) for c in s.classes if c.label == "research"}
    assert classid(without) == classid(abilene_plan)
