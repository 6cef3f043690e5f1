"""Configuration of the lab's emulated world (pure rendering with Jinja2).

Each provider is a BIRD 2 router in its own namespace: one eBGP session with the vISP's AS,
to the border router on the egress node (exporting what it learned from the Internet and its
generated table), one to the Internet router (exporting what it learned from the vISP), and
its kernel protocol so it really forwards. The Internet router holds the test host and
announces its prefix to every provider, so the return path follows BGP too.

The session with the border runs BFD with the border's timers when the provider uses BFD
(compiler/bfd.py: BIRD's `bfd { ... }` in the session, FRR's `bfd profile`), and after a
failure (BFD down, hold timer) BIRD tries again after a second or so, as a commercial ISP's
router would, instead of its default minute (`error wait time`).
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from jinja2 import Environment, StrictUndefined

from .bfd import PROFILE as BFD_PROFILE
from .bfd import BfdTimers, render_provider_bfdd

_env = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

PROVIDER_BIRD = _env.from_string("""\
# vispd lab provider {{ provider.name }} (AS{{ provider.asn }}), generated: do not edit
log stderr all;
router id {{ router_id }};
protocol device { scan time 10; }
protocol kernel {
  ipv4 { import none; export where proto != "gen"; };
  merge paths on;
}
{% if bfd %}
protocol bfd {}
{% endif %}
{% if generated %}
protocol static gen {
  ipv4;
{% for prefix in generated %}
  route {{ prefix }} blackhole;
{% endfor %}
}
{% endif %}
protocol bgp {{ protocol }} {
  description "vISP {{ topology }} (AS{{ session.vasn }}): its border router";
  local {{ session.local }} as {{ provider.asn }};
  neighbor {{ session.border }} as {{ session.vasn }};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1;
  error wait time 1, 10;
{% if bfd %}
  bfd { interval {{ bfd.interval_ms }} ms; multiplier {{ bfd.multiplier }}; };
{% endif %}
  ipv4 { import all; export where proto = "internet" || proto = "gen"; next hop self; };
}
protocol bgp internet {
  local {{ transit_local }} as {{ provider.asn }};
  neighbor {{ transit_remote }} as {{ internet.asn }};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1;
  ipv4 { import all; export where proto = "{{ protocol }}"; next hop self; };
}
""")

PROVIDER_FRR_BGPD = _env.from_string("""\
! vispd lab provider {{ provider.name }} (AS{{ provider.asn }}) on FRR, generated: do not edit
hostname {{ provider.name }}
router bgp {{ provider.asn }}
 bgp router-id {{ router_id }}
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 3 9
 neighbor {{ session.border }} remote-as {{ session.vasn }}
 neighbor {{ session.border }} description vISP {{ topology }} border router
 neighbor {{ session.border }} timers connect 1
{% if bfd %}
 neighbor {{ session.border }} bfd profile {{ bfd_profile }}
{% endif %}
 neighbor {{ transit_remote }} remote-as {{ internet.asn }}
 neighbor {{ transit_remote }} timers connect 1
 address-family ipv4 unicast
{% for prefix in generated %}
  network {{ prefix }}
{% endfor %}
 exit-address-family
""")

INTERNET_BIRD = _env.from_string("""\
# vispd lab Internet router (AS{{ internet.asn }}), generated: do not edit
log stderr all;
router id {{ internet.host }};
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
protocol static host { ipv4; route {{ internet.prefix }} blackhole; }
{% for provider, local, remote in peers %}
protocol bgp {{ symbol("prov", provider.name) }} {
  local {{ local }} as {{ internet.asn }};
  neighbor {{ remote }} as {{ provider.asn }};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1;
  ipv4 { import all; export where proto = "host"; };
}
{% endfor %}
""")


@dataclass(frozen=True)
class BorderSession:
    """The provider's one session with the vISP: its own address, the border's, the vISP's AS."""

    local: str
    border: str
    vasn: int


SESSION_PROTOCOL = "vispd"  # the BIRD protocol holding the session with the vISP's border


def symbol(kind: str, name: str) -> str:
    """A BIRD protocol name for a YAML name (BIRD symbols cannot contain '-')."""
    return f"{kind}_{name.replace('-', '_')}"


def session_protocol() -> str:
    """The BIRD protocol that holds the vISP's session at a provider (for `birdc disable`)."""
    return SESSION_PROTOCOL


def generated_prefixes(count: int) -> list[str]:
    """`count` distinct prefixes from 10.0.0.0/8: /24s up to 65,536, /28s up to 1,048,576."""
    if count <= 0:
        return []
    length = 24 if count <= 2**16 else 28
    if count > 2 ** (length - 8):
        raise ValueError(f"at most {2 ** 20} generated prefixes")
    base = int(IPv4Network("10.0.0.0/8").network_address)
    step = 2 ** (32 - length)
    return [f"{_dotted(base + i * step)}/{length}" for i in range(count)]


def _dotted(value: int) -> str:
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def render_provider_bird(topo, provider, session: BorderSession, transit_local: str, transit_remote: str,
                         bfd: BfdTimers | None = None) -> str:
    return PROVIDER_BIRD.render(
        provider=provider, router_id=transit_local, session=session, protocol=SESSION_PROTOCOL,
        transit_local=transit_local, transit_remote=transit_remote, internet=topo.internet,
        generated=generated_prefixes(provider.lab_routes), symbol=symbol, topology=topo.name, bfd=bfd)


def render_provider_frr(topo, provider, session: BorderSession, transit_local: str,
                        transit_remote: str, bfd: BfdTimers | None = None) -> dict[str, str]:
    """zebra's and bgpd's configuration of an FRR provider, and bfdd's when its session uses
    BFD (FRR's eBGP has no export policy here: it offers everything to everyone, and sends
    the vISP its own prefixes back, which the border drops for carrying its own AS)."""
    bgpd = PROVIDER_FRR_BGPD.render(
        provider=provider, router_id=transit_local, session=session,
        transit_remote=transit_remote, internet=topo.internet,
        generated=generated_prefixes(provider.lab_routes), topology=topo.name, bfd=bfd, bfd_profile=BFD_PROFILE)
    confs = {"zebra": f"hostname {provider.name}-zebra\n", "bgpd": bgpd}
    if bfd is not None:
        confs["bfdd"] = render_provider_bfdd(provider.name, bfd)
    return confs


def render_internet_bird(topo, peers) -> str:
    return INTERNET_BIRD.render(internet=topo.internet, peers=peers, symbol=symbol)
