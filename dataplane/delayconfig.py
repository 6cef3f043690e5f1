"""The delay line's configuration (pure): which links one process serves, and how.

A planner builds a `LineConfig` per delay process (one per node is the intended unit: all
the delayed links that arrive in that node's slivers), writes `render_config(config)` to
a file and starts `command(path)`; `parse_config` reads it back in the process.

JSON form (durations and loss as topology files write them):

    {"owner": "abilene", "early": "75us", "coalesce": "200us", "realtime": "auto",
     "workers": 1, "ready-socket": "/run/vispd/abilene/delay-denver.sock",
     "links": [{"queues": [0], "delay": "8ms", "jitter": "0us", "loss": "0%",
     "netns": "vispd.abilene.denver.plb", "device": "v-sttl", "direction": "in"}]}

Only `links` is required. `ready-socket`, when given, is a UNIX socket the process listens
on from the moment its queues are bound and its rules installed until it begins to stop
(it never accepts): vispd waits for it after starting the process, and a process that runs
without it is reported as not serving.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from model.linkprops import parse_duration_us, parse_loss
from .delayrules import DelayRules
from .rtclock import REALTIME_MODES

DEFAULT_EARLY_US = 75  # the wake-up and re-injection measured here: RTTs centre on 2 x delay
DEFAULT_COALESCE_US = 200


@dataclass(frozen=True)
class LinkDelay:
    """One delayed (namespace, device, direction): its queues and what it declares."""

    queues: tuple[int, ...]
    delay_us: int
    jitter_us: int = 0
    loss: float = 0.0
    netns: str = ""  # "" = the namespace the process runs in
    device: str = ""  # "" = the rules are installed by someone else (the plan)
    direction: str = "in"

    def __post_init__(self):
        if not self.queues or not all(0 <= q <= 0xFFFF for q in self.queues):
            raise ValueError(f"queues must be numbers 0-65535, got {self.queues!r}")
        if self.jitter_us > self.delay_us:
            raise ValueError(f"jitter {self.jitter_us}us exceeds the delay {self.delay_us}us: "
                             "a packet cannot leave before it came")
        if self.device:
            self.rules()  # validates direction, contiguous queue numbers and loss

    def rules(self) -> DelayRules:
        return DelayRules(self.device, self.direction, self.queues, self.loss)


@dataclass(frozen=True)
class LineConfig:
    links: tuple[LinkDelay, ...]
    early_us: int = DEFAULT_EARLY_US
    coalesce_us: int = DEFAULT_COALESCE_US
    realtime: str = "auto"
    workers: int = 1
    owner: str = ""
    jitter_period_us: int | None = None
    seed: int | None = None
    ready_socket: str = ""  # listened on while the line is ready ("" = none)

    def __post_init__(self):
        if not self.links:
            raise ValueError("a delay line needs at least one link")
        if self.realtime not in REALTIME_MODES:
            raise ValueError(f"realtime must be one of {REALTIME_MODES}, got {self.realtime!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        taken = [(link.netns, q) for link in self.links for q in link.queues]
        if len(taken) != len(set(taken)):
            raise ValueError("two links use the same queue number in the same namespace")


def _link_from(entry: dict) -> LinkDelay:
    queues = entry["queues"] if isinstance(entry["queues"], list) else [entry["queues"]]
    return LinkDelay(queues=tuple(int(q) for q in queues), delay_us=parse_duration_us(entry["delay"]),
                     jitter_us=parse_duration_us(entry.get("jitter", "0us")),
                     loss=parse_loss(entry.get("loss", "0%")), netns=entry.get("netns", ""),
                     device=entry.get("device", ""), direction=entry.get("direction", "in"))


def parse_config(text: str) -> LineConfig:
    """A LineConfig from its JSON text (pure); ValueError/KeyError on bad input."""
    data = json.loads(text)
    period = data.get("jitter-period")
    return LineConfig(links=tuple(_link_from(entry) for entry in data["links"]),
                      early_us=parse_duration_us(data.get("early", f"{DEFAULT_EARLY_US}us")),
                      coalesce_us=parse_duration_us(data.get("coalesce", f"{DEFAULT_COALESCE_US}us")),
                      realtime=data.get("realtime", "auto"), workers=int(data.get("workers", 1)),
                      owner=data.get("owner", ""), seed=data.get("seed"),
                      ready_socket=data.get("ready-socket", ""),
                      jitter_period_us=parse_duration_us(period) if period else None)


def render_config(config: LineConfig) -> str:
    """The JSON text parse_config reads back (pure): what a planner writes to a file."""
    links = [{"queues": list(link.queues), "delay": f"{link.delay_us}us", "jitter": f"{link.jitter_us}us",
              "loss": f"{link.loss * 100:.10g}%", "netns": link.netns, "device": link.device,
              "direction": link.direction} for link in config.links]
    data = {"owner": config.owner, "early": f"{config.early_us}us", "coalesce": f"{config.coalesce_us}us",
            "realtime": config.realtime, "workers": config.workers, "links": links}
    if config.jitter_period_us is not None:
        data["jitter-period"] = f"{config.jitter_period_us}us"
    if config.seed is not None:
        data["seed"] = config.seed
    if config.ready_socket:
        data["ready-socket"] = config.ready_socket
    return json.dumps(data, indent=1) + "\n"


def command(config_path: str, python: str = sys.executable) -> list[str]:
    """The argv that runs the delay line for a config file (cwd: the project root)."""
    return [python, "-m", "dataplane.delayline", "--config", config_path]
