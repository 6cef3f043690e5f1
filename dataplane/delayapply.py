"""Applying a delay line's rules in the namespaces it serves: one iptables-restore per
namespace, leftovers of a killed predecessor cleared first, removal in the background while
packets keep being released. Devices whose arrivals are held (direction "in") also get
fresh receive timestamps (dataplane.delaystamp) while their rules are installed. Touches
the system (runs iptables-restore / iptables-save, tc through netlink)."""
from __future__ import annotations

import subprocess

from . import delaystamp
from .delayconfig import LineConfig, LinkDelay
from .delayrules import DIRECTIONS, chain_name, render_iptables, render_iptables_delete, restore_argv


def _by_namespace(config: LineConfig) -> dict[str, list[LinkDelay]]:
    """The links whose rules this process manages, grouped by namespace (one
    iptables-restore per namespace: its sections are applied in order)."""
    groups: dict[str, list[LinkDelay]] = {}
    for link in config.links:
        if link.device:
            groups.setdefault(link.netns, []).append(link)
    return groups


def _script(links: list[LinkDelay], owner: str, delete: bool = False) -> str:
    render = render_iptables_delete if delete else render_iptables
    return "".join(render(link.rules(), owner) for link in links)


def restore(ns: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(restore_argv(ns), input=script, capture_output=True, text=True)


def _present(ns: str, links: list[LinkDelay]) -> list[LinkDelay]:
    """The links whose delay chain exists in `ns` (left by a predecessor that was killed)."""
    tables = sorted({DIRECTIONS[link.direction][0] for link in links})
    saved = "".join(subprocess.run(["ip", "netns", "exec", ns, "iptables-save", "-t", t] if ns else
                                   ["iptables-save", "-t", t], capture_output=True, text=True).stdout
                    for t in tables)
    return [link for link in links if f":{chain_name(link.device, link.direction)} " in saved]


def arrivals(links: list[LinkDelay]) -> list[tuple[str, str]]:
    """(namespace, device) of the links that hold packets where they arrive."""
    return [(link.netns, link.device) for link in links if link.device and link.direction == "in"]


def remove_rules(ns: str, links: list[LinkDelay], owner: str) -> None:
    """Remove these links' rules one by one (a chain already gone does not stop the rest)."""
    for link in links:
        restore(ns, _script([link], owner, delete=True))
    for place in arrivals(links):
        delaystamp.detach(*place)


def install_rules(config: LineConfig) -> None:
    """Install every link's rules (one iptables-restore per namespace), clearing leftover
    copies first. On a refusal, remove what was installed and raise RuntimeError."""
    done: list[str] = []
    groups = _by_namespace(config)
    for ns, links in groups.items():
        leftovers = _present(ns, links)
        if leftovers:
            remove_rules(ns, leftovers, config.owner)
        delaystamp.fresh_stamps(arrivals(links))
        result = restore(ns, _script(links, config.owner))
        if result.returncode != 0:
            for installed in done:
                remove_rules(installed, groups[installed], config.owner)
            raise RuntimeError(f"rules in {ns or 'this namespace'}: {result.stderr.strip()}")
        done.append(ns)


class RuleRemoval:
    """Removing every link's rules in the background (one iptables-restore per namespace)
    while the caller keeps releasing packets; a namespace whose combined removal fails
    (a chain someone else deleted) is redone link by link."""

    def __init__(self, config: LineConfig):
        self.config = config
        self.groups = _by_namespace(config)
        self.running: dict[str, subprocess.Popen] = {}
        for ns, links in self.groups.items():
            proc = subprocess.Popen(restore_argv(ns), stdin=subprocess.PIPE, text=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            proc.stdin.write(_script(links, config.owner, delete=True))
            proc.stdin.close()
            self.running[ns] = proc

    def done(self) -> bool:
        for ns, proc in list(self.running.items()):
            if proc.poll() is None:
                return False
            if proc.returncode != 0:
                remove_rules(ns, self.groups[ns], self.config.owner)
            for place in arrivals(self.groups[ns]):
                delaystamp.detach(*place)
            del self.running[ns]
        return True
