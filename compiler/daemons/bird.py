"""Configuration of the lab's emulated world (pure rendering with Jinja2).

Each provider is a BIRD 2 router in its own namespace: one eBGP session per slice
egressing through it (exporting what it learned from the Internet and its generated
table), one to the Internet router (exporting what it learned from the slices), and its
kernel protocol so it really forwards. The Internet router holds the test host and
announces its prefix to every provider, so the return path follows BGP too.
"""
from __future__ import annotations

from ipaddress import IPv4Network

from jinja2 import Environment, StrictUndefined

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
{% if generated %}
protocol static gen {
  ipv4;
{% for prefix in generated %}
  route {{ prefix }} blackhole;
{% endfor %}
}
{% endif %}
{% for s in sessions %}
protocol bgp {{ symbol("slice", s.slice) }} {
  description "vISP {{ topology }} slice {{ s.slice }}";
  local {{ s.provider_address }} as {{ provider.asn }};
  neighbor {{ s.slice_address }} as {{ vasn }};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1;
  ipv4 { import all; export where proto = "internet" || proto = "gen"; next hop self; };
}
{% endfor %}
protocol bgp internet {
  local {{ transit_local }} as {{ provider.asn }};
  neighbor {{ transit_remote }} as {{ internet.asn }};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1;
  ipv4 { import all; export where proto ~ "slice_*"; next hop self; };
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
{% for s in sessions %}
 neighbor {{ s.slice_address }} remote-as {{ vasn }}
 neighbor {{ s.slice_address }} description vISP {{ topology }} slice {{ s.slice }}
 neighbor {{ s.slice_address }} timers connect 1
{% endfor %}
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


def symbol(kind: str, name: str) -> str:
    """A BIRD protocol name for a YAML name (BIRD symbols cannot contain '-')."""
    return f"{kind}_{name.replace('-', '_')}"


def session_protocol(slice_name: str) -> str:
    """The BIRD protocol that holds a slice's session at a provider (for `birdc disable`)."""
    return symbol("slice", slice_name)


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


def render_provider_bird(topo, provider, sessions, transit_local: str, transit_remote: str) -> str:
    return PROVIDER_BIRD.render(
        provider=provider, router_id=transit_local, sessions=sessions, vasn=topo.asn,
        transit_local=transit_local, transit_remote=transit_remote, internet=topo.internet,
        generated=generated_prefixes(provider.lab_routes), symbol=symbol, topology=topo.name)


def render_provider_frr(topo, provider, sessions, transit_local: str, transit_remote: str) -> dict[str, str]:
    """zebra's and bgpd's configuration of an FRR provider (FRR's eBGP has no export policy
    here: it offers everything to everyone, and sends slices their own prefix back, which
    the vISP's speaker drops for carrying its own AS)."""
    bgpd = PROVIDER_FRR_BGPD.render(
        provider=provider, router_id=transit_local, sessions=sessions, vasn=topo.asn,
        transit_remote=transit_remote, internet=topo.internet,
        generated=generated_prefixes(provider.lab_routes), topology=topo.name)
    return {"zebra": f"hostname {provider.name}-zebra\n", "bgpd": bgpd}


def render_internet_bird(topo, peers) -> str:
    return INTERNET_BIRD.render(internet=topo.internet, peers=peers, symbol=symbol)
