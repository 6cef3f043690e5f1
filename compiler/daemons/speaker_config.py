"""The egress speaker's JSON configuration: parsed into frozen dataclasses, defaults filled,
shapes checked. Pure. vispd writes the JSON; exabgp_conf renders ExaBGP's file from it and
the helper reads it. Announcement *safety* is not judged here (that is policy.py): a config
may carry an unsafe announcement, and the helper must refuse it at run time."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

RT_PROTO_DEFAULT = 78
TABLE_MAIN = 254
METRIC_DEFAULT = 20


class ConfigError(ValueError):
    """The configuration is malformed (missing key, wrong type, bad address)."""


@dataclass(frozen=True)
class Neighbor:
    name: str
    address: str          # the peer's address (a provider's is also the FIB gateway)
    local_address: str
    peer_as: int
    local_pref: int = 100
    max_prefix: int | None = None   # None: unlimited
    add_path: str = ""    # ExaBGP's add-path capability toward it: "", "send" or "receive"


@dataclass(frozen=True)
class ProviderPath:
    """A provider's routes as a slice's speaker receives them from the vISP's border router:
    one ADD-PATH path id per provider, and that provider's next hop on the slice's link to
    the border (the FIB gateway that sends a packet to this provider)."""

    name: str
    path_id: str          # the ADD-PATH path identifier, dotted ("0.0.0.1")
    next_hop: str
    local_pref: int = 100


@dataclass(frozen=True)
class Announcement:
    prefix: str
    prepend: int = 0
    communities: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpeakerConfig:
    slice: str
    node: str
    local_as: int
    router_id: str
    neighbors: tuple[Neighbor, ...]
    allowed_prefixes: tuple[str, ...] = ()
    announce: tuple[Announcement, ...] = ()
    rt_proto: int = RT_PROTO_DEFAULT
    table: int = TABLE_MAIN
    metric: int = METRIC_DEFAULT      # our routes' priority: never replaces a metric-0 route
    hold_time: int | None = None      # None: ExaBGP's default
    prefsrc: str | None = None        # source address for locally sent packets (the loopback)
    status_file: str | None = None
    event_socket: str | None = None
    log_file: str | None = None
    config_file: str | None = None    # where this JSON lives (render() needs it for `run`)
    paths: tuple[ProviderPath, ...] = ()  # behind a border: the providers' paths on its session
    ibgp: bool = False                # announce to the border without our own AS (it adds it)
    extra: dict = field(default_factory=dict, compare=False)

    def neighbor_by_address(self) -> dict[str, Neighbor]:
        return {n.address: n for n in self.neighbors}


def _require(raw: dict, key: str, kind, where: str):
    if key not in raw:
        raise ConfigError(f"{where}: missing key '{key}'")
    value = raw[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _optional_int(raw: dict, key: str, default, where: str, low: int = 0, high: int = 2**32 - 1):
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: '{key}' must be an integer in [{low}, {high}], got {value!r}")
    return value


def _required_int(raw: dict, key: str, where: str, low: int = 0, high: int = 2**32 - 1) -> int:
    if raw.get(key) is None:
        raise ConfigError(f"{where}: missing key '{key}'")
    return _optional_int(raw, key, None, where, low, high)


def _ipv4(value: str, key: str, where: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError):
        raise ConfigError(f"{where}: '{key}' is not an IPv4 address: {value!r}") from None


def _neighbor(raw, index: int) -> Neighbor:
    where = f"neighbors[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    return Neighbor(
        name=_require(raw, "name", str, where),
        address=_ipv4(_require(raw, "address", str, where), "address", where),
        local_address=_ipv4(_require(raw, "local_address", str, where), "local_address", where),
        peer_as=_required_int(raw, "peer_as", where, 1),
        local_pref=_optional_int(raw, "local_pref", 100, where),
        max_prefix=_optional_int(raw, "max_prefix", None, where),
        add_path=_add_path(raw.get("add_path", ""), where),
    )


def _add_path(value, where: str) -> str:
    if value not in ("", "send", "receive", "send/receive"):
        raise ConfigError(f"{where}: 'add_path' must be send, receive or send/receive, got {value!r}")
    return value


def parse_path(raw, index: int) -> ProviderPath:
    where = f"paths[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    return ProviderPath(name=_require(raw, "name", str, where),
                        path_id=_ipv4(_require(raw, "path_id", str, where), "path_id", where),
                        next_hop=_ipv4(_require(raw, "next_hop", str, where), "next_hop", where),
                        local_pref=_optional_int(raw, "local_pref", 100, where))


def _announcement(raw, index: int) -> Announcement:
    # Kept loose on purpose: a malformed value is refused by policy with a reason, not here,
    # so one bad announcement cannot stop the sessions or the other announcements.
    where = f"announce[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("prefix"), str):
        raise ConfigError(f"{where}: must be an object with a string 'prefix'")
    communities = raw.get("communities", [])
    if not isinstance(communities, list):
        communities = [communities]
    return Announcement(prefix=raw["prefix"], prepend=raw.get("prepend", 0),
                        communities=tuple(str(c) for c in communities))


KNOWN_KEYS = {"slice", "node", "local_as", "router_id", "neighbors", "allowed_prefixes", "announce",
              "rt_proto", "table", "metric", "hold_time", "prefsrc", "status_file", "event_socket", "log_file",
              "config_file", "paths", "ibgp"}


def parse_config(raw: dict) -> SpeakerConfig:
    """The checked configuration; ConfigError names the offending key."""
    if not isinstance(raw, dict):
        raise ConfigError("config: must be a JSON object")
    where = "config"
    neighbors = _require(raw, "neighbors", list, where)
    parsed = tuple(_neighbor(n, i) for i, n in enumerate(neighbors))
    addresses = [n.address for n in parsed]
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"{where}: two neighbors share an address")
    allowed = raw.get("allowed_prefixes", [])
    if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
        raise ConfigError(f"{where}: 'allowed_prefixes' must be a list of strings")
    announce = raw.get("announce", [])
    if not isinstance(announce, list):
        raise ConfigError(f"{where}: 'announce' must be a list")
    hold_time = _optional_int(raw, "hold_time", None, where, 0, 65535)
    if hold_time is not None and 0 < hold_time < 3:
        raise ConfigError(f"{where}: 'hold_time' must be 0 or at least 3, got {hold_time}")
    return SpeakerConfig(
        slice=_require(raw, "slice", str, where),
        node=_require(raw, "node", str, where),
        local_as=_required_int(raw, "local_as", where, 1),
        router_id=_ipv4(_require(raw, "router_id", str, where), "router_id", where),
        neighbors=parsed,
        allowed_prefixes=tuple(allowed),
        announce=tuple(_announcement(a, i) for i, a in enumerate(announce)),
        rt_proto=_optional_int(raw, "rt_proto", RT_PROTO_DEFAULT, where, 1, 255),
        table=_optional_int(raw, "table", TABLE_MAIN, where, 1),
        metric=_optional_int(raw, "metric", METRIC_DEFAULT, where),
        hold_time=hold_time,
        prefsrc=_ipv4(raw["prefsrc"], "prefsrc", where) if raw.get("prefsrc") else None,
        status_file=raw.get("status_file"),
        event_socket=raw.get("event_socket"),
        log_file=raw.get("log_file"),
        config_file=raw.get("config_file"),
        paths=tuple(parse_path(p, i) for i, p in enumerate(raw.get("paths") or [])),
        ibgp=_require(raw, "ibgp", bool, where) if "ibgp" in raw else False,
        extra={k: v for k, v in raw.items() if k not in KNOWN_KEYS},
    )


def read_raw(path: str) -> dict:
    with open(path) as handle:
        raw = json.load(handle)
    if isinstance(raw, dict) and not raw.get("config_file"):
        raw = {**raw, "config_file": path}
    return raw


def load_config(path: str) -> SpeakerConfig:
    return parse_config(read_raw(path))
