"""OSPF in a slice's slivers (`routing: ospf`): one BIRD 2 per sliver (pure rendering).

Each sliver's BIRD runs OSPFv2 in area 0 over the sliver's virtual links and installs what
it learns into the sliver's kernel table with the loopback as source address. Virtual
links are per-slice macvlans whose node guard drops every multicast frame (a macvlan
would hand a multicast frame to every slice's sliver on the link, see FACTS.md), so the
interfaces are point-to-multipoint with the one neighbour configured: BIRD then sends
hellos, database descriptions, updates and acks to the neighbour's unicast address and
OSPF never needs 224.0.0.5/6. The loopback, the pseudo-devices' subnets and the access
pools are stub networks. `check link` makes a link whose carrier goes (the substrate
link taken down) drop its neighbour at once rather than after the dead interval.
"""
from __future__ import annotations

import os
import signal

from jinja2 import Environment, StrictUndefined

from .model import Ospf, Slice
from .plan import Daemon

_env = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

SLIVER_BIRD = _env.from_string("""\
# vispd: OSPF of slice {{ slice }} on {{ node }} (topology {{ topology }}), generated: do not edit
log stderr { warning, error, fatal };
router id {{ loopback }};
protocol device { scan time 10; }
protocol kernel {
  ipv4 {
    import none;
    export filter { if source = RTS_OSPF then { krt_prefsrc = {{ loopback }}; accept; } reject; };
  };
}
protocol ospf v2 ospf_{{ slice | replace("-", "_") }} {
  tick 1;
  ipv4 { import all; export none; };
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
                       neighbours: list[tuple[str, str, str, int]], stubs: list[str]) -> str:
    """BIRD's configuration for one sliver; `neighbours` are (ifname, address/len, peer
    address, link cost) of the sliver's virtual links."""
    return SLIVER_BIRD.render(
        topology=topology, slice=sl.name, node=node, loopback=loopback, stubs=stubs,
        timers=sl.ospf or default_timers(),
        neighbours=[{"ifname": i, "address": a, "peer": p, "cost": c} for i, a, p, c in neighbours])


def daemon_name(slice_name: str, node: str) -> str:
    return f"ospf-{slice_name}-{node}"


def sliver_daemon(topology: str, sl: Slice, node: str, ns: str, loopback: str,
                  neighbours: list[tuple[str, str, str, int]], stubs: list[str],
                  run_dir: str, sock_dir: str) -> Daemon:
    """The BIRD of one sliver of an OSPF slice (reloaded with SIGHUP when only its
    configuration changes)."""
    name = daemon_name(sl.name, node)
    conf = render_sliver_bird(topology, sl, node, loopback, neighbours, stubs)
    return Daemon(node=node, ns=ns, name=name,
                  argv=("bird", "-f", "-c", os.path.join(run_dir, f"{name}.conf"),
                        "-s", os.path.join(sock_dir, f"{name}.ctl"),
                        "-P", os.path.join(run_dir, f"{name}.birdpid")),
                  files=((f"{name}.conf", conf),), reload_signal=signal.SIGHUP)


def control_socket(sock_dir: str, slice_name: str, node: str) -> str:
    """Where `birdc -s` reaches a sliver's BIRD (for `vispd routes` and tests)."""
    return os.path.join(sock_dir, f"{daemon_name(slice_name, node)}.ctl")
