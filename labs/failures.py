"""Link failures measured from inside a lab: the least-cost path of a slice and the reply
TTL that tells which way a reply came, probes started once their path answers, one
failure-and-recovery cycle of a substrate link for several slices at once, and
`measure_reconvergence` (the link-failure lab's measurement, also used by bench/lab.py).

    from labs import failures           # or `import failures` with labs/ on sys.path
    figures = failures.measure_reconvergence(lab, "plb", "seattle", "denver", ("seattle", "denver"))

Times are `time.monotonic()` seconds, as in labs/lablib.py (whose `Pinger` and
`event_figures` this builds on) and `linkstate.LinkChange`.

I/O: link changes and probes inside a lab.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from compiler.routing import next_hops, slice_graph

if __package__:
    from .lablib import Pinger, Sample, answered, event_figures, steady_ttl
else:  # labs/NAME/run.py puts labs/ on sys.path
    from lablib import Pinger, Sample, answered, event_figures, steady_ttl


# -- paths -------------------------------------------------------------------------------
def path_nodes(topo, slice_name: str, src: str, dst: str, failed=()) -> list[str]:
    """The least-cost node path of a slice from src to dst (vispd's tie-breaking), with the
    links in `failed` ((a, b) pairs) taken out; [] when unreachable."""
    sl = topo.slice(slice_name)
    dead = {tuple(sorted(f)) for f in failed}
    graph = slice_graph(topo.slice_nodes(sl), [lk for lk in topo.slice_links(sl) if lk.key not in dead])
    hops = next_hops(graph)
    path = [src]
    while path[-1] != dst:
        nxt = hops.get(path[-1], {}).get(dst)
        if nxt is None or nxt in path:
            return []
        path.append(nxt)
    return path


def reply_ttl(path: list[str], initial: int = 64) -> int:
    """The TTL of a reply that crossed `path` (each sliver on the way forwards it once)."""
    return initial - (len(path) - 2)


# -- reconvergence -----------------------------------------------------------------------
@dataclass
class Probe:
    """One pinger of a failure cycle: slice, source node -> destination node's sliver."""

    slice: str
    src: str
    dst: str
    pinger: Pinger | None = None


def wait_reachable(lab, host: str, address: str, timeout: float = 60.0) -> float | None:
    """Wait until one ping from `host` to `address` is answered (an OSPF slice has no
    routes for several seconds after `up`); the seconds it took, None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        out = lab.cmd(host, ["ping", "-n", "-c", "1", "-W", "1", address], timeout=5)
        if " 0% packet loss" in out:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def start_probes(lab, probes: list[Probe], interval: float, timeout: float = 60.0) -> None:
    """Start each probe's pinger once its destination answers (an OSPF slice has no routes
    for seconds after `up`)."""
    for p in probes:
        host, address = lab.sliver(p.slice, p.src), lab.address(lab.sliver(p.slice, p.dst))
        if wait_reachable(lab, host, address, timeout) is None:
            raise RuntimeError(f"{p.slice}: {p.dst} never answered {p.src} within {timeout:g} s")
        p.pinger = Pinger(lab, host, address, interval).start()


def _replies_since(t: float, ttl: int | None, count: int):
    def ok(trace: list[Sample]) -> bool:
        fresh = [s for s in answered(trace)[-count:] if s.sent >= t]
        return len(fresh) >= count and (ttl is None or all(s.ttl == ttl for s in fresh))
    return ok


def wait_steady(probes: list[Probe], ttl: dict[str, int | None], timeout: float = 30.0,
                count: int = 20) -> bool:
    """Wait until each probe's last `count` replies are recent and have the expected TTL."""
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    for p in probes:
        if not p.pinger.wait(_replies_since(since, ttl.get(p.slice), count), deadline - time.monotonic()):
            return False
    return True


def failure_cycle(lab, probes: list[Probe], link: tuple[str, str], interval: float,
                  hold_down: float = 1.0, hold_up: float = 1.0, timeout: float = 30.0,
                  on_event=None) -> dict:
    """One failure and recovery of `link` with the probes' pingers running (start them with
    `start_probes`): wait until every probe is steady on its least-cost path, take the link
    down, wait until every probe gets replies again (then `hold_down` s more), bring it up,
    wait until every probe's replies come back with the pre-failure TTL (then `hold_up`).
    `on_event(kind, change)` is called after each change. Returns the LinkChanges and, per
    probe's slice, the figures of `event_figures` for "down" and "up"."""
    topo = lab.topo
    expected = {p.slice: reply_ttl(path_nodes(topo, p.slice, p.dst, p.src)) for p in probes}
    failed = {p.slice: reply_ttl(path_nodes(topo, p.slice, p.dst, p.src, failed=[link])) for p in probes}
    if not wait_steady(probes, expected, timeout):
        raise RuntimeError("the probes did not settle on their least-cost paths: "
                           + ", ".join(f"{p.slice}: ttl {steady_ttl(p.pinger.trace(), time.monotonic())} "
                                       f"(expected {expected[p.slice]})" for p in probes))
    down = lab.link_down(*link)
    if on_event:
        on_event("down", down)
    for p in probes:
        p.pinger.wait(_replies_since(down.changed_at, None, 5), timeout)
    time.sleep(hold_down)
    up = lab.link_up(*link)
    if on_event:
        on_event("up", up)
    for p in probes:
        p.pinger.wait(_replies_since(up.changed_at, expected[p.slice], 20), timeout)
    time.sleep(hold_up)
    out = {"link": list(link), "down": down, "up": up, "end": time.monotonic(), "slices": {}}
    for p in probes:
        trace = p.pinger.trace()
        d = event_figures(trace, down.changed_at, interval)
        u = event_figures(trace, up.changed_at, interval, ttl=expected[p.slice])
        # the reply TTLs expected on the least-cost path and on the detour
        out["slices"][p.slice] = {"down": d, "up": u, "ttl_path": expected[p.slice],
                                  "ttl_detour": failed[p.slice]}
    return out


def change_figures(change) -> dict:
    return {"routes_changed": change.routes_changed,
            "applied_ms": round((change.applied_at - change.changed_at) * 1000, 3)}


def measure_reconvergence(lab, slice_name: str, src_node: str, dst_node: str,
                          link: tuple[str, str], interval: float = 0.01, timeout: float = 30.0,
                          hold: float = 1.0) -> dict:
    """Reconvergence of one slice after `link` fails, and after it comes back.

    Pings every `interval` s from the slice's sliver on `src_node` to the loopback of its
    sliver on `dst_node`, waits until the replies are steady on the least-cost path (OSPF
    slices may need seconds after `up`), takes `link` down, waits for replies again, then
    brings it up and waits until the replies come back over the original path (their TTL).
    The link must lie on the path and have an alternative. Returns (times in ms):

        {"slice", "src", "dst", "link", "interval_ms",
         "down": {"loss_window_ms", "reconverge_ms", "lost", "recovered", ...,
                  "routes_changed", "applied_ms"},
         "up":   {... the same, recovery = first reply over the original path}}

    `reconverge_ms`: from the link's change (LinkChange.changed_at) to the first reply of a
    probe sent after it (after `up`: the first reply over the original path); `loss_window_ms`:
    lost probes x probe spacing in between; `applied_ms`: vispd's own part (the link's change
    to every route in place; `routes_changed` routes, static slices only).
    """
    path = path_nodes(lab.topo, slice_name, src_node, dst_node)
    if not any({a, b} == set(link) for a, b in zip(path, path[1:])):
        raise ValueError(f"link {link} is not on {slice_name}'s path {' - '.join(path)}")
    if not path_nodes(lab.topo, slice_name, src_node, dst_node, failed=[link]):
        raise ValueError(f"{slice_name} has no path from {src_node} to {dst_node} without {link}")
    probe = Probe(slice_name, src_node, dst_node)
    start_probes(lab, [probe], interval)
    try:
        cycle = failure_cycle(lab, [probe], link, interval, hold_down=hold, hold_up=hold, timeout=timeout)
    finally:
        probe.pinger.stop()
    figures = cycle["slices"][slice_name]
    return {
        "slice": slice_name, "src": src_node, "dst": dst_node, "link": list(link),
        "interval_ms": interval * 1000, "path": path,
        "down": {**figures["down"], **change_figures(cycle["down"])},
        "up": {**figures["up"], **change_figures(cycle["up"])},
    }
