"""A sliced line a-b-c-d built as vispd builds it, with either guard, and `routing: own`
slices beside the kernel-path ones (side effects; used by bench/guard.py and the root
tests in tests/netns/test_bpf_guard.py).

Node namespaces PREFIX.a .. PREFIX.d joined by veth substrate links (`to-PEER`, no
addresses, forwarding off), each substrate device shaped by HTB exactly as vispd renders
it (`dataplane.tc`), one class per slice. Per slice a sliver PREFIX.NODE.SLICE on every
node, with a /32 loopback, a /31 per virtual link, static routes between loopbacks
(source = loopback), forwarding on, as `vispd up` makes them. Then:

* kernel-path slices (`kernel=`): one private macvlan `v-PEER` per virtual link on the
  substrate device, ARP off and static neighbours: today's path;
* `routing: own` slices (`own=`): one veth pair per virtual link, the slice's end `v-PEER`
  in the sliver (ordinary ARP: the slice does what it likes) and the node end `oSLICE-PEER`
  in the node namespace, steered by the node's own-link program (`dataplane.bpf`).

`use_guard(line, "nft")` puts vispd's nftables guard + u32 classification on every node
(`dataplane.nft`, `dataplane.tc`, from the same plan resources vispd would make),
`use_guard(line, "tcx" | "clsact")` the BPF guard on that hook (HTB without u32 filters;
"bpf": the hook `dataplane.bpf.detect` picks), and `use_guard(line, "none")` neither (HTB
alone). Own slices need a BPF guard: without their program, their frames reach the node
end and die there. Everything made is under PREFIX
and removed by `teardown` (namespaces by name; nothing else is created).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from dataplane import netns
from compiler.resources import guard as nft, shaping as tc
from dataplane.bpf import detect, hooks, node as bpfnode, spec
from compiler.resources import IsolationFilter, Shaping, ShapingClass

NODES = ["a", "b", "c", "d"]
OWNER_TOPOLOGY = "hbguard"  # the owner marker (`vispd:hbguard`) of everything put in place
OWNER = f"vispd:{OWNER_TOPOLOGY}"
BPF_MODES = tuple(hooks.MODES)
SLIVER_SYSCTLS = (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                  ("net.ipv4.conf.default.rp_filter", "0"), ("net.ipv6.conf.all.disable_ipv6", "1"))
NODE_SYSCTLS = (("net.ipv4.ip_forward", "0"), ("net.ipv6.conf.all.disable_ipv6", "1"))


@dataclass(frozen=True)
class SliceSpec:
    name: str  # 2 characters at most (interface names)
    rate: int  # guaranteed bits/s on every substrate device
    own: bool = False


@dataclass
class Line:
    prefix: str
    capacity: int
    slices: list[SliceSpec]
    guard: str = "none"
    namespaces: list[str] = field(default_factory=list)

    def node_ns(self, node: str) -> str:
        return f"{self.prefix}.{node}"

    def sliver(self, slice_name: str, node: str) -> str:
        return f"{self.prefix}.{node}.{slice_name}"

    def index(self, slice_name: str) -> int:
        return [s.name for s in self.slices].index(slice_name)

    def loopback(self, slice_name: str, node: str) -> str:
        return f"10.{100 + self.index(slice_name)}.255.{NODES.index(node) + 1}"

    def link_address(self, slice_name: str, node: str, peer: str) -> str:
        i, j = NODES.index(node), NODES.index(peer)
        return f"10.{100 + self.index(slice_name)}.{min(i, j)}.{0 if i < j else 1}"

    def mac(self, slice_name: str, node: str, peer: str) -> str:
        return f"02:4b:{self.index(slice_name):02x}:{NODES.index(node):02x}:{NODES.index(peer):02x}:01"

    def classid(self, slice_name: str) -> int:
        return 0x10 + self.index(slice_name)

    def slice(self, name: str) -> SliceSpec:
        return self.slices[self.index(name)]


def peers(node: str) -> list[str]:
    i = NODES.index(node)
    return [NODES[j] for j in (i - 1, i + 1) if 0 <= j < len(NODES)]


def own_ifname(slice_name: str, peer: str) -> str:
    return f"o{slice_name}-{peer}"


def _run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}\n{stdin or ''}")


def _batch(tool: str, ns: str, lines: list[str]) -> None:
    if lines:
        _run([tool, "-n", ns, "-batch", "-"], "\n".join(lines) + "\n")


# --- building -------------------------------------------------------------------------

def node_lines(line: Line, node: str) -> list[str]:
    """ip batch in a node namespace: substrate veths (made from the left end), the slices'
    macvlans and own-link veths, created straight into their slivers."""
    out = ["link set lo up"]
    i = NODES.index(node)
    if i + 1 < len(NODES):
        right = NODES[i + 1]
        out.append(f"link add to-{right} type veth peer name to-{node} netns {line.node_ns(right)}")
    out += [f"link set to-{peer} up" for peer in peers(node)]
    for sl in line.slices:
        target = line.sliver(sl.name, node)
        for peer in peers(node):
            mac = line.mac(sl.name, node, peer)
            if sl.own:
                out.append(f"link add {own_ifname(sl.name, peer)} up type veth peer name v-{peer} "
                           f"netns {target} address {mac}")
            else:
                out.append(f"link add link to-{peer} name v-{peer} netns {target} address {mac} "
                           "type macvlan mode private")
    return out


def sliver_lines(line: Line, sl: SliceSpec, node: str) -> list[str]:
    out = ["link set lo up", f"address add {line.loopback(sl.name, node)}/32 dev lo"]
    for peer in peers(node):
        dev = f"v-{peer}"
        out.append(f"link set {dev} {'' if sl.own else 'arp off '}up")
        out.append(f"address add {line.link_address(sl.name, node, peer)}/31 dev {dev}")
        if not sl.own:
            out.append(f"neigh replace {line.link_address(sl.name, peer, node)} lladdr "
                       f"{line.mac(sl.name, peer, node)} dev {dev} nud permanent")
    i = NODES.index(node)
    for j, other in enumerate(NODES):
        if j != i:
            hop = NODES[i - 1] if j < i else NODES[i + 1]
            out.append(f"route add {line.loopback(sl.name, other)}/32 via "
                       f"{line.link_address(sl.name, hop, node)} src {line.loopback(sl.name, node)}")
    return out


def _make_namespace(line: Line, name: str, sysctls) -> None:
    netns.create(name)
    line.namespaces.append(name)
    with netns.entered(name):
        for key, value in sysctls:
            netns.write_sysctl(key, value)


def build(prefix: str, capacity: int, slices: list[SliceSpec], guard: str = "none") -> Line:
    """Build the line (on failure, whatever was made is removed before raising)."""
    line = Line(prefix, capacity, slices)
    try:
        for node in NODES:
            _make_namespace(line, line.node_ns(node), NODE_SYSCTLS)
            for sl in slices:
                _make_namespace(line, line.sliver(sl.name, node), SLIVER_SYSCTLS)
        for node in NODES:  # in order: each veth's right end exists for the next node
            _batch("ip", line.node_ns(node), node_lines(line, node))
        for node in NODES:
            for sl in slices:
                _batch("ip", line.sliver(sl.name, node), sliver_lines(line, sl, node))
        use_guard(line, guard)
    except BaseException:
        teardown(line)
        raise
    return line


# --- the two guards -------------------------------------------------------------------

def shaping(line: Line, node: str, peer: str) -> Shaping:
    """The substrate device's HTB, as vispd's planner makes it (one class per slice)."""
    classes = tuple(ShapingClass(classid=line.classid(sl.name), rate=sl.rate, ceil=line.capacity,
                                 macs=(line.mac(sl.name, node, peer),), label=sl.name) for sl in line.slices)
    return Shaping(node=node, ns=line.node_ns(node), ifname=f"to-{peer}", capacity=line.capacity,
                   classes=classes)


def isolation_filter(line: Line, node: str) -> IsolationFilter:
    pairs = sorted((line.mac(sl.name, peer, node), line.mac(sl.name, node, peer))
                   for sl in line.slices if not sl.own for peer in peers(node))
    return IsolationFilter(node=node, ns=line.node_ns(node), devices=tuple(f"to-{p}" for p in peers(node)),
                           pairs=tuple(pairs))


def node_guard(line: Line, node: str, with_own: bool = True) -> spec.NodeGuard:
    """The BPF guard of a node: what the planner would emit (see dataplane.bpf.spec).
    Without `with_own`, as if the own slices were not there (their links stay dead)."""
    devices = []
    for peer in peers(node):
        ends = tuple(spec.SliceEnd(mac=line.mac(sl.name, node, peer), peer_mac=line.mac(sl.name, peer, node),
                                   classid=line.classid(sl.name),
                                   own_ifname=own_ifname(sl.name, peer) if sl.own else "",
                                   label=f"{sl.name}@{node}->{peer}")
                     for sl in line.slices if with_own or not sl.own)
        devices.append(spec.DeviceGuard(f"to-{peer}", ends))
    return spec.NodeGuard(ns=line.node_ns(node), devices=tuple(devices))


def _htb_lines(line: Line, node: str, guard: str) -> list[str]:
    """vispd's HTB for each device: with its u32 filters ("nft"), without them ("bpf": the
    classifier sets skb->priority), or without them and with the first slice's class as
    HTB's default ("none": every frame lands in a class within its rate, as on the plain
    path, so what is left is macvlan alone)."""
    lines = []
    for peer in peers(node):
        rendered = tc.render(shaping(line, node, peer))
        if guard == "none":
            first = line.classid(line.slices[0].name)
            rendered[0] = rendered[0].replace(f" default {tc.DEFAULT_CLASS:x}", f" default {first:x}")
        lines += [x for x in rendered if guard == "nft" or not x.startswith("filter ")]
    return lines


def _clear_guards(line: Line, node: str) -> None:
    ns = line.node_ns(node)
    _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], nft.render_delete())
    for mode in BPF_MODES:
        bpfnode.delete(ns, mode)
    for peer in peers(node):
        subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", f"to-{peer}", "root"], capture_output=True)


def use_guard(line: Line, guard: str, with_own: bool = True) -> None:
    """Switch every node to `guard`: "nft" (+u32), "tcx" or "clsact" (the BPF guard on
    that hook), "bpf" (on the hook `detect` picks), or "none" (HTB alone). A BPF guard
    `with_own=False` leaves the own slices out, as for a topology without them."""
    if guard == "bpf":
        guard = detect.available().mode
    if guard not in ("nft", "none", *BPF_MODES):
        raise ValueError(f"no such guard: {guard}")
    for node in NODES:
        ns = line.node_ns(node)
        _clear_guards(line, node)
        _batch("tc", ns, _htb_lines(line, node, guard))
        if guard == "nft":
            _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], nft.render(isolation_filter(line, node), OWNER))
        elif guard in BPF_MODES:
            bpfnode.apply(node_guard(line, node, with_own), guard)
    line.guard = guard if with_own or guard not in BPF_MODES else f"{guard}-without-own"


def teardown(line: Line) -> None:
    for name in reversed(line.namespaces):
        if netns.exists(name):
            netns.kill_inside(name)
            netns.remove(name)
    line.namespaces.clear()
