"""`vispd lab TOPOLOGY`: the topology in Mininet, and Mininet's CLI with vispd's commands.

Every host answers to its readable name (`plb-seattle ping plb-new-york`: host names after
the first word are replaced by the host's address, a sliver's being its loopback), and
the CLI adds `hosts`, `status`, `check`, `routes SLICE NODE`, `linkdown A B`, `linkup A B`
and `bgp`. `--script FILE` runs the commands of FILE (one per line, `#` comments) instead
of prompting, and the exit status says whether every vispd command in it succeeded.

I/O: a Mininet CLI over a built lab.
"""
from __future__ import annotations

import signal
import sys

from mininet.cli import CLI

from model.errors import VispdError
from .bgpstatus import render_bgp_status, render_routes
from .labnet import Lab
from .status import render_status


class VispdCLI(CLI):
    prompt = "vispd> "

    def __init__(self, lab: Lab, script: str | None = None, stdin=sys.stdin):
        self.lab = lab
        self.failures: list[str] = []
        super().__init__(lab.net, stdin=stdin, script=script)

    def _fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"*** {what}")

    def _words(self, line: str, count: int, usage: str) -> list[str] | None:
        words = line.split()
        if len(words) != count:
            self._fail(f"usage: {usage}")
            return None
        return words

    def _address(self, word: str) -> str:
        if word in self.lab.hosts():
            try:
                return self.lab.address(word)
            except VispdError:
                return word
        return word

    def parseline(self, line: str):
        """Words are split at whitespace (Cmd's own split stops at '-', which host names
        such as `plb-seattle` contain); `#` starts a comment line."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None, None, ""
        if line[0] == "?":
            line = "help " + line[1:]
        first, _, rest = line.partition(" ")
        return first, rest.strip(), line

    def default(self, line: str) -> None:
        first, args, line = self.parseline(line)
        if first in self.mn and args:
            node = self.mn[first]
            node.sendCmd(" ".join(self._address(word) for word in args.split(" ")))
            self.waitForNode(node)
            return
        super().default(line)

    def emptyline(self) -> None:  # Cmd would repeat the last command
        pass

    # -- vispd commands -------------------------------------------------------------------
    def do_hosts(self, _line: str) -> None:
        """hosts: every host with its namespace and address."""
        for name, ns in sorted(self.lab.hosts().items()):
            print(f"{name:28} {self._address(name):16} {ns}")

    def do_status(self, _line: str) -> None:
        """status: what is up, and whether it matches the plan."""
        status = self.lab.status()
        print(render_status(status))
        if not status["in_sync"]:
            self._fail("status: not in sync with the plan")

    def do_check(self, line: str) -> None:
        """check [TIMEOUT]: reachability, egress and isolation, probed from the slivers."""
        timeout = float(line.split()[0]) if line.split() else 2.0
        report = self.lab.check(timeout=timeout)
        for text in report.lines():
            print(text)
        if not report.ok:
            self._fail("check FAILED")

    def do_routes(self, line: str) -> None:
        """routes SLICE NODE: the routes of a sliver, by origin."""
        words = self._words(line, 2, "routes SLICE NODE")
        if words:
            try:
                print(render_routes(self.lab.routes(*words)))
            except KeyError:
                self._fail(f"slice '{words[0]}' has no sliver on node '{words[1]}'")

    def do_linkdown(self, line: str) -> None:
        """linkdown A B: take the substrate link between nodes A and B down."""
        self._link(line, down=True)

    def do_linkup(self, line: str) -> None:
        """linkup A B: bring the substrate link between nodes A and B back up."""
        self._link(line, down=False)

    def _link(self, line: str, down: bool) -> None:
        words = self._words(line, 2, f"link{'down' if down else 'up'} A B")
        if not words:
            return
        try:
            change = self.lab.link_down(*words) if down else self.lab.link_up(*words)
        except VispdError as exc:
            self._fail(str(exc))
            return
        a, b = change.link
        took = (change.applied_at - change.changed_at) * 1000
        print(f"link {a}-{b} {'down' if down else 'up'}: {change.routes_changed} routes changed, "
              f"applied {took:.1f} ms after the link changed")

    def do_bgp(self, _line: str) -> None:
        """bgp: the BGP sessions of every egress sliver."""
        statuses = self.lab.bgp()
        print(render_bgp_status(statuses) if statuses else "no BGP egress in this topology")

    def do_pingall(self, _line: str) -> None:
        """pingall: in vispd labs, `check` pings every pair in every slice (and more)."""
        self.do_check("")


def run_lab(topology: str, script: str | None = None) -> int:
    """Build, hand over to the CLI (or run the script), tear down; the exit status."""
    lab = Lab(topology)

    def stop_on_term(signum, frame):
        raise SystemExit(128 + signum)  # Mininet's CLI swallows KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        lab.start()
        print(f"{lab.topo.name}: {len(lab.hosts())} Mininet hosts, built in {lab.times.total:.1f} s "
              f"({lab.times.steps} objects); type `help` for commands, `exit` to tear down")
        cli = VispdCLI(lab, script=script)
        return 1 if cli.failures else 0
    finally:
        try:
            lab.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
