"""OSPF in a slice's slivers (`routing: ospf`): one BIRD 2 per sliver (pure rendering).

Each sliver's BIRD runs OSPFv2 in area 0 over the sliver's virtual links and installs what
it learns into the sliver's kernel table with the loopback as source address. Virtual
links are per-slice macvlans whose node guard drops every multicast frame (a macvlan
would hand a multicast frame to every slice's sliver on the link, see FACTS.md), so the
interfaces are point-to-multipoint with the one neighbour configured: BIRD then sends
hellos, database descriptions, updates and acks to the neighbour's unicast address and
OSPF never needs 224.0.0.5/6. The loopback, the pseudo-devices' subnets and the access
pools are stub networks (each ptmp interface's own address is one too, by RFC 2328, so
the slice's link addresses are routed as /32s).

Choices made for correctness and speed, measured on a 4-node ring (tests/netns/test_ospf.py):

* `check link yes`: a macvlan follows its substrate veth's carrier, so a link taken down
  (`vispd link down`) or lost drops the neighbour at once instead of after `dead`
  seconds. Rerouting then waits only for BIRD's next routing-table calculation.
* `tick 1` (the smallest BIRD allows, in whole seconds): routing tables are recomputed at
  most a second after a change, so a pair whose path crossed a failed link is back after
  0.5-1.1 s of lost echoes (each end reroutes on its own tick; micro-loops last at most a
  tick). There is no faster knob: BIRD 2 has no sub-second tick.
* OSPF's MinLSInterval (5 s, fixed in BIRD) spaces two originations of a router's LSA.
  Every BIRD originates one when it starts, so although neighbours are Full within a
  second of `up`, the LSAs that carry the new adjacencies wait for it: all routes are in
  5-8 s after `up` (what `vispd check --converge` waits for), and a link coming back
  moves paths back after 3-5 s.
* `ecmp yes` (BIRD's default, written out because it changes paths): equal-cost paths are
  installed as multipath routes, where vispd's static routes pick one next hop by name.
  (Setting `ignore_routes_with_linkdown` so the kernel would skip a multipath route's
  carrier-less next hop before BIRD reroutes was tried: no measurable gain here, so no.)
* Timers (`hello`, `dead`, `retransmit`) come from the slice's `ospf:` block (default
  1/4/2 s); with `check link` the dead interval only matters for a neighbour that stops
  without its link going down (its BIRD killed).
"""
from __future__ import annotations

import os
import signal

from jinja2 import Environment, StrictUndefined

from model.schema import Ospf, Slice
from ..resources import Daemon
_env = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

SLIVER_BIRD = _env.from_string("""\
# vispd: OSPF of slice {{ slice }} on {{ node }} (topology {{ topology }}), generated: do not edit
log stderr { warning, error, fatal };
router id {{ loopback }};
protocol device { scan time 10; }
protocol kernel {
  ipv4 {
    import none;
    export filter { if source ~ [ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2 ] then { krt_prefsrc = {{ loopback }}; accept; } reject; };
  };
}
{% if originate_default %}
# Enabled by vispd's egress manager while this egress has a live BGP session with routes.
protocol static {{ default_protocol }} {
  disabled;
  ipv4;
  route 0.0.0.0/0 unreachable;
}
{% endif %}
protocol ospf v2 ospf_{{ slice | replace("-", "_") }} {
  tick 1;
  ecmp yes;
{% if originate_default %}
  ipv4 {
    import all;
    # the default of a live egress, as a type-1 external route: slivers take the nearest
    export filter { if proto = "{{ default_protocol }}" then { ospf_metric1 = 1; accept; } reject; };
  };
{% else %}
  ipv4 { import all; export none; };
{% endif %}
  area 0 {
    stubnet {{ loopback }}/32;
{% for prefix in stubs %}
    stubnet {{ prefix }};
{% endfor %}
{% for n in neighbours %}
    interface "{{ n.ifname }}" {
      type ptmp;
      cost {{ n.cost }};
      hello {{ timers.hello }}; dead {{ timers.dead }}; retransmit {{ timers.retransmit }};
      check link yes;
      neighbors { {{ n.peer }}; };
    };
{% endfor %}
  };
}
""")


def default_timers() -> Ospf:
    return Ospf()


def render_sliver_bird(topology: str, sl: Slice, node: str, loopback: str,
                       neighbours: list[tuple[str, str, str, int]], stubs: list[str],
                       originate_default: bool = False) -> str:
    """BIRD's configuration for one sliver; `neighbours` are (ifname, address/len, peer
    address, link cost) of the sliver's virtual links."""
    return SLIVER_BIRD.render(
        topology=topology, slice=sl.name, node=node, loopback=loopback, stubs=stubs,
        timers=sl.ospf or default_timers(), originate_default=originate_default,
        default_protocol=EGRESS_DEFAULT_PROTOCOL,
        neighbours=[{"ifname": i, "address": a, "peer": p, "cost": c} for i, a, p, c in neighbours])


EGRESS_DEFAULT_PROTOCOL = "egress_default"  # the static protocol the egress manager toggles


def daemon_name(slice_name: str, node: str) -> str:
    return f"ospf-{slice_name}-{node}"


def sliver_daemon(topology: str, sl: Slice, node: str, ns: str, loopback: str,
                  neighbours: list[tuple[str, str, str, int]], stubs: list[str],
                  run_dir: str, sock_dir: str, originate_default: bool = False) -> Daemon:
    """The BIRD of one sliver of an OSPF slice (reloaded with SIGHUP when only its
    configuration changes). An egress sliver (`originate_default`) can originate the
    slice's default route into OSPF; the egress manager turns it on and off."""
    name = daemon_name(sl.name, node)
    conf = render_sliver_bird(topology, sl, node, loopback, neighbours, stubs, originate_default)
    control = os.path.join(sock_dir, f"{name}.ctl")
    return Daemon(node=node, ns=ns, name=name,
                  argv=("bird", "-f", "-c", os.path.join(run_dir, f"{name}.conf"), "-s", control,
                        "-P", os.path.join(run_dir, f"{name}.birdpid")),
                  files=((f"{name}.conf", conf),), reload_signal=signal.SIGHUP,
                  listens=(("unix", control, 0),))


def control_socket(sock_dir: str, slice_name: str, node: str) -> str:
    """Where `birdc -s` reaches a sliver's BIRD (for `vispd routes` and tests)."""
    return os.path.join(sock_dir, f"{daemon_name(slice_name, node)}.ctl")
