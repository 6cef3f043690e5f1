#!/usr/bin/env python3
"""Failover after a silent failure (issue 12 part 3). Run as root:

    python3 bench/failover.py [--runs 7] [--quick]

Everything is real: `vispd up` (the CLI, with a private VISPD_STATE_DIR), the border
routers (ExaBGP + vispd's helper, FRR's bfdd) and the lab's BIRD providers with BFD.

Topology `hfbfPID`: nodes a - b, provider p1 at a, p2 at b, slice s on both egressing
through both (BFD on by default: 100 ms x 3; BGP hold time 9 s). Sliver a leaves by p1.

One run:
1. A probe (measure/pathprobe.py) sends an ICMP echo to the Internet host 203.0.113.10
   from sliver a every 5 ms; taps on each provider's device facing the vISP note which
   provider every request reached. Wait until the replies of the last 200 ms all answered
   requests that went via p1, p1's and p2's BFD and BGP are up, and the Internet router has
   the slice's prefix from both providers (the replies' way back).
2. p1 starts dropping everything, silently: an nftables table in p1's namespace with a
   netdev ingress and egress chain, policy drop, on its device facing the vISP (no
   NOTIFICATION, no link event on our side). t0 = when the first request to reach p1
   after that went unanswered reached it (to within the 5 ms of the probe; `nft` itself
   takes ~25 ms to start and commit), at the latest when `nft` returned.
3. failover_silent_s = first reply (after t0) to a request that went via p2, minus t0.
   forward_moved_s = when the first request reached p2, minus t0 (the way out alone; the
   replies' way back moves when p1 withdraws the vISP's prefix from the Internet router).
   bfd_detect_s = when p1's BFD went down (the border's status), minus t0. lost = probes
   sent from t0 to the failover that were never answered.
4. The drop is lifted (t1): moveback_silent_s = first reply to a request via p1 after t1,
   minus t1 (BFD's slow Down-state packets, BGP, the routes, the egress manager).
Medians over the runs. The last line printed is one JSON object. Everything is removed in
a `finally`: the drop table, the probe, `vispd down`, the temporary directory.

I/O (root): a topology, namespaces and processes of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# Run as a script, Python puts bench/ first on sys.path: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO

from measure.pathprobe import PathProbe  # noqa: E402
from measure import median, say, wait_for  # noqa: E402
from measure.silentlab import SLICE_PREFIX, provider_device, silence, topology  # noqa: E402
from model.naming import lab_ns, sliver_ns  # noqa: E402

INTERNET_HOST = "203.0.113.10"
HOLD_TIME = 9
GOAL = 0.5


class Lab:
    """The deployed topology, as the bench drives it."""

    def __init__(self, workdir: str, name: str):
        self.name, self.workdir = name, workdir
        self.state_dir = os.path.join(workdir, "state")
        self.env = dict(os.environ, VISPD_STATE_DIR=self.state_dir, PYTHONPATH=REPO)
        self.path = os.path.join(workdir, f"{name}.yaml")
        with open(self.path, "w") as handle:
            handle.write(topology(name))
        self.up_done = False

    def vispd(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run([sys.executable, "-m", "vispd.cli", *args], env=self.env, cwd=REPO,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"vispd {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def up(self) -> None:
        self.up_done = True
        self.vispd("up", self.path)

    def provider(self, node: str) -> dict:
        """The border's status of the provider at `node` (p1 at a, p2 at b)."""
        path = os.path.join(self.state_dir, self.name, "run", f"border-{node}.status.json")
        try:
            with open(path) as handle:
                status = json.load(handle)
        except (OSError, ValueError):
            return {}
        return status.get("neighbors", {}).get("p1" if node == "a" else "p2", {})

    def healthy(self, node: str) -> bool:
        provider = self.provider(node)
        return provider.get("state") == "up" and provider.get("bfd", {}).get("state") == "up"

    def return_paths(self) -> int:
        """How many providers the Internet router has the slice's prefix from (the replies'
        way back: both, or a failover would also wait for the other's announcement)."""
        out = subprocess.run(["birdc", "-s", f"/run/vispd/{self.name}/bird-internet.ctl", "show", "route",
                              SLICE_PREFIX, "all"], capture_output=True, text=True, timeout=30).stdout
        return out.count("BGP.as_path")

    def provider_ns(self, provider: str) -> str:
        return lab_ns(self.name, provider)

    def drop(self, on: bool) -> None:
        """p1 drops everything on its device facing the vISP, or stops dropping."""
        silence(self.name, "p1", on)

    def down(self, keep_logs: bool = False) -> None:
        if self.up_done:
            self.drop(False)
            if keep_logs:   # `down` removes the run directory: its logs first
                with contextlib.suppress(OSError):
                    shutil.copytree(os.path.join(self.state_dir, self.name, "run"), os.path.join(self.workdir, "run"))
            try:
                self.vispd("down", self.name, timeout=300)
            except Exception as exc:   # keep cleaning
                print(f"cleanup: vispd down {self.name}: {exc}", file=sys.stderr)


def one_run(lab: Lab, probe: PathProbe, index: int) -> dict:
    if not wait_for(lambda: lab.healthy("a") and lab.healthy("b") and probe.only_via("p1")
                    and lab.return_paths() == 2, timeout=60):
        raise RuntimeError(f"run {index}: traffic does not settle on p1 with BFD up "
                           f"(p1: {lab.provider('a')}, p2: {lab.provider('b')})")
    started = time.monotonic()
    lab.drop(True)
    returned = time.monotonic()
    failover = wait_for(lambda: probe.first_reply_via("p2", returned), timeout=3 * HOLD_TIME)
    # the drop began when the first request p1 saw went unanswered (`nft` takes ~25 ms to
    # start and commit; the probe pins the moment to within one interval)
    t0 = min(returned, probe.first_lost_via("p1", started) or returned)
    bfd_down = wait_for(lambda: (lambda b: b.get("state") != "up" and b.get("since"))(lab.provider("a").get("bfd", {})),
                        timeout=3 * HOLD_TIME)
    reason = lab.provider("a").get("last_down_reason", "")
    forward = probe.first_seen_at("p2", t0)
    lost = probe.lost_between(t0, failover) if failover else None
    time.sleep(0.3)
    lab.drop(False)
    t1 = time.monotonic()
    moveback = wait_for(lambda: probe.first_reply_via("p1", t1), timeout=6 * HOLD_TIME)
    result = {"failover_s": round(failover - t0, 4) if failover else None,
              "forward_moved_s": round(forward - t0, 4) if forward else None,
              "bfd_detect_s": round(bfd_down - probe.wall(t0), 4) if bfd_down else None,
              "moveback_s": round(moveback - t1, 4) if moveback else None,
              "drop_apply_s": round(returned - started, 4), "drop_started_before_return_s": round(returned - t0, 4),
              "lost": lost, "down_reason": reason}
    say(f"run {index}: failover {result['failover_s']} s (requests reach p2 after {result['forward_moved_s']} s, "
        f"BFD down after {result['bfd_detect_s']} s, "
        f"{lost} probes lost; {reason!r}), back to p1 {result['moveback_s']} s after the drop ended")
    return result


def run_all(lab: Lab, runs: int) -> list[dict]:
    lab.up()
    probe = PathProbe(sliver_ns(lab.name, "a", "s"), INTERNET_HOST).start()
    try:
        for provider in ("p1", "p2"):
            probe.tap(provider, lab.provider_ns(provider), provider_device(provider))
        return [one_run(lab, probe, i + 1) for i in range(runs)]
    finally:
        probe.stop()


def summary(results: list[dict], quick: bool) -> dict:
    def values(key):
        return [r[key] for r in results]
    failover = median(values("failover_s"), 4)
    return {
        "quick": quick, "runs": len(results),
        "failover_silent_s": failover, "failover_silent_s_runs": values("failover_s"),
        "failover_silent_s_max": max((v for v in values("failover_s") if v is not None), default=None),
        "bfd_detect_s": median(values("bfd_detect_s"), 4), "forward_moved_s": median(values("forward_moved_s"), 4),
        "moveback_silent_s": median(values("moveback_s"), 4),
        "lost_probes": median(values("lost"), 1), "probe_interval_s": 0.005,
        "drop_apply_s": median(values("drop_apply_s"), 4),
        "drop_started_before_return_s": median(values("drop_started_before_return_s"), 4),
        "down_by_bfd": all(r["down_reason"].startswith("BFD down") for r in results),
        "bfd_interval_ms": 100, "bfd_multiplier": 3, "hold_time_s": HOLD_TIME, "goal_s": GOAL,
        "goal_met": failover is not None and failover <= GOAL,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory, and the daemons' logs")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/failover.py needs root (network namespaces)")
    runs = 1 if args.quick else args.runs
    workdir = tempfile.mkdtemp(prefix="hfbf-")
    lab = Lab(workdir, f"hfbf{os.getpid() % 100000}")
    try:
        results = run_all(lab, runs)
    finally:
        lab.down(keep_logs=args.keep)
        if args.keep:
            say(f"kept {workdir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    figures = summary(results, args.quick)
    say(f"failover after a silent failure: median {figures['failover_silent_s']} s over {runs} runs "
        f"(goal {GOAL} s; BFD {figures['bfd_interval_ms']} ms x {figures['bfd_multiplier']}, "
        f"hold time {HOLD_TIME} s); back to p1 in {figures['moveback_silent_s']} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
