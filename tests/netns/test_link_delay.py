"""Declared link delays through `vispd up` on the real kernel (this machine has no netem: the
delay line realises them). A line a -5ms- b -10ms- c -20% loss- d with two slices: pings
between two slivers answer in twice the sum of the one-way delays (98% within 1 ms), idle
and while another slice pushes TCP over the same links and delay processes; loss is
binomial; TCP reaches its window-bound rate; plan and status show every link; a killed
delay process fails `check` (the link fails closed) and `up` restarts it; a changed delay
is reloaded in place; and with neither mechanism `up` refuses before building anything."""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import time

import pytest

from bench import iperfrun
from conftest import unique_name, vispd, wait_for
from dataplane import delaycaps

pytestmark = pytest.mark.root

TOPOLOGY = """\
name: NAME
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
links:
  - {between: [a, b], bandwidth: 1G, delay: 5ms}
  - {between: [b, c], bandwidth: 1G, delay: 10ms}
  - {between: [c, d], bandwidth: 1G, loss: 20%}
slices:
  - {name: probe, bandwidth: 300M}
  - {name: cross, bandwidth: 300M}
"""
TARGET_A_C_MS = 2 * (5 + 10)
IPERF_PORT = 15214
SINK_PORT = 9


@pytest.fixture(scope="module")
def delay_line_works():
    if not delaycaps.probe().nfqueue:
        pytest.skip(f"this kernel cannot queue packets to user space: {delaycaps.probe().detail}")


@pytest.fixture(scope="module")
def line(tmp_path_factory, delay_line_works):
    """The topology, up under a private state directory; always taken down."""
    work = tmp_path_factory.mktemp("hidelay")
    env = {**os.environ, "VISPD_STATE_DIR": str(work / "state")}
    env.pop("VISPD_DELAY_MECHANISM", None)
    name = unique_name("hi")
    path = work / f"{name}.yaml"
    path.write_text(TOPOLOGY.replace("NAME", name))
    vispd("up", str(path), env=env)
    try:
        yield Line(name, str(path), env, work / "state" / name / "run")
    finally:
        vispd("down", str(path), check=False, env=env)


class Line:
    def __init__(self, name: str, path: str, env: dict, run):
        self.name, self.path, self.env, self.run = name, path, env, run
        status = self.status()
        self.loopback = {(s["slice"], s["node"]): s["loopback"] for s in status["slivers"]}

    def vispd(self, *args, check=True):
        return vispd(*args, check=check, env=self.env)

    def status(self) -> dict:
        return json.loads(self.vispd("status", self.name, "--json", check=False).stdout)

    def ns(self, slice_name: str, node: str) -> str:
        return f"vispd.{self.name}.{node}.{slice_name}"

    def exec(self, slice_name: str, node: str, argv: list[str], timeout: float = 120):
        return subprocess.run(["ip", "netns", "exec", self.ns(slice_name, node), *argv], capture_output=True,
                              text=True, timeout=timeout)

    def popen(self, slice_name: str, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns(slice_name, node), *argv], **kwargs)

    def pid(self, node: str) -> int:
        return int((self.run / f"delay-{node}.pid").read_text().split()[0])


def ping(line: Line, count: int = 300, interval: float = 0.01) -> tuple[list[float], int]:
    """(RTTs in ms, pings sent) from the probe sliver on a to the one on c. Behind a delay
    line a reply is stamped when ping reads it (dataplane.delaystamp), so ping's own wake-up
    counts: it runs at real-time priority, as the labs' prober does, so that the machine's
    other load measures the delay line, not ping's turn for a CPU."""
    out = line.exec("probe", "a", ["chrt", "-f", "20", "ping", "-n", "-i", str(interval), "-c", str(count),
                                   "-W", "1", line.loopback[("probe", "c")]]).stdout
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)], count


def within(rtts: list[float], sent: int, target: float) -> float:
    return sum(abs(r - target) <= 1.0 for r in rtts) / sent


@contextlib.contextmanager
def iperf_server(line: Line, slice_name: str):
    """One iperf3 server on the slice's sliver on c for a series of runs, stopped by its PID
    (a one-off `-s -1` server per run raced its successor: the new one could not bind while
    the old one was still closing, and the client met the old one's exit)."""
    server = iperfrun.Server(line.ns(slice_name, "c"), line.loopback[(slice_name, "c")], IPERF_PORT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def iperf_client(line: Line, slice_name: str, server: iperfrun.Server, seconds: int, *options: str) -> subprocess.Popen:
    """iperf3 TCP from the slice's sliver on a to its server on c: the same links and delay
    processes as the pings."""
    return line.popen(slice_name, "a", ["iperf3", "-c", server.address, "-p", str(server.port),
                                        "-t", str(seconds), "-J", *options],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def iperf_report(client: subprocess.Popen) -> dict:
    report = json.loads(client.communicate(timeout=60)[0])
    assert "error" not in report, f"iperf3: {report['error']}"
    return report


def meets(line: Line, loaded: bool) -> bool:
    """98% of 3 s of pings within 1 ms of 30 ms and centred on it (median within 0.5 ms),
    in one of three samples. The machine is
    shared: under someone else's load the kernel defers packet processing to ksoftirqd, and
    each of the four holds on the way waits for it (measured: 0.89-0.95 at a load average of
    3.6, 0.98 at 3.1); a delay line that misses the goal misses it every time, and every
    sample must centre on the target."""
    with iperf_server(line, "cross") if loaded else contextlib.nullcontext() as server:
        for attempt in (1, 2, 3):
            if sample_meets(line, server, attempt):
                return True
    return False


def sample_meets(line: Line, server: iperfrun.Server | None, attempt: int) -> bool:
    """One sample of `meets`, under the cross slice's TCP when a server is given."""
    flow = iperf_client(line, "cross", server, 6) if server else None
    if flow:
        time.sleep(1.5)  # past slow start
    rtts, sent = ping(line)
    fraction = within(rtts, sent, TARGET_A_C_MS)
    note = ""
    if flow:
        mbps = iperf_report(flow)["end"]["sum_received"]["bits_per_second"] / 1e6
        assert mbps > 50, "the cross traffic did not run"
        note = f", cross traffic {mbps:.0f} Mbit/s"
    print(f"{'loaded' if server else 'idle'} attempt {attempt}: {fraction:.4f} within 1 ms of "
          f"{TARGET_A_C_MS} ms, median {statistics.median(rtts)} ms, {sent - len(rtts)} lost{note}")
    # a delay line that is off is off in every sample; a sample merely late (the machine's
    # other load) is retried
    assert statistics.median(rtts) == pytest.approx(TARGET_A_C_MS, abs=3.0)
    return fraction >= 0.98 and abs(statistics.median(rtts) - TARGET_A_C_MS) <= 0.5


def test_rtt_is_twice_the_sum_of_one_way_delays_idle_and_under_another_slices_tcp(line):
    assert meets(line, loaded=False)
    assert meets(line, loaded=True)


def test_each_direction_is_held_once_on_a_single_link(line):
    out = line.exec("cross", "b", ["ping", "-n", "-i", "0.05", "-c", "40", line.loopback[("cross", "a")]]).stdout
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
    assert len(rtts) == 40 and statistics.median(rtts) == pytest.approx(10.0, abs=2.0)
    assert min(rtts) >= 9.7  # neither direction passes undelayed (less the early release)


def install_sink(line: Line) -> None:
    script = (f"add table ip hisink\nadd chain ip hisink input {{ type filter hook input priority 0; }}\n"
              f"add rule ip hisink input udp dport {SINK_PORT} counter drop\n")
    subprocess.run(["ip", "netns", "exec", line.ns("probe", "d"), "nft", "-f", "-"], input=script, text=True,
                   check=True)


def sink_count(line: Line) -> int:
    out = line.exec("probe", "d", ["nft", "-j", "list", "chain", "ip", "hisink", "input"]).stdout
    return next(expr["counter"]["packets"] for item in json.loads(out)["nftables"]
                for expr in item.get("rule", {}).get("expr", []) if "counter" in expr)


def test_loss_is_binomial(line):
    install_sink(line)
    try:
        sent = 20000
        out = line.exec("probe", "c", ["python3", "-m", "bench.udpblast", "--dst", line.loopback[("probe", "d")],
                                       "--rate", "20000", "--seconds", str(sent / 20000)])
        assert out.returncode == 0, out.stderr
        reported = json.loads(out.stdout.strip().splitlines()[-1])
        sent = reported.get("sent", sent)
        time.sleep(0.3)
        lost = sent - sink_count(line)
        sigma = math.sqrt(sent * 0.2 * 0.8)
        print(f"lost {lost} of {sent} ({lost / sent:.4f}; 0.2 +- {4.5 * sigma / sent:.4f})")
        assert abs(lost - 0.2 * sent) < 4.5 * sigma, f"lost {lost} of {sent}"
    finally:
        line.exec("probe", "d", ["nft", "delete", "table", "ip", "hisink"])


def test_tcp_reaches_its_window_bound_rate_over_the_delayed_path(line):
    with iperf_server(line, "probe") as server:
        report = iperf_report(iperf_client(line, "probe", server, 5, "-w", "512K"))
    steady = [i["streams"][0] for i in report["intervals"]][1:]
    window = statistics.median(s["snd_wnd"] for s in steady)
    bound = window * 8 / (TARGET_A_C_MS / 1000) / 1e6
    rate = statistics.median(s["bits_per_second"] for s in steady) / 1e6
    rtt = statistics.median(s["rtt"] for s in steady) / 1000
    print(f"{rate:.0f} Mbit/s of a {bound:.0f} Mbit/s window bound, smoothed RTT {rtt:.1f} ms")
    assert rtt == pytest.approx(TARGET_A_C_MS, abs=3.0)
    assert rate >= 0.8 * bound


def test_plan_and_status_show_each_link_its_mechanism_and_queues(line):
    plan = line.vispd("plan", line.name).stdout.splitlines()
    assert plan[0] == "link delays (3 links, one way):"
    assert plan[1:4] == ["  a-b  5ms by delay line (delay-a, delay-b)",
                         "  b-c  10ms by delay line (delay-b, delay-c)",
                         "  c-d  0us, loss 20% by delay line (delay-c, delay-d)"]
    assert plan[-1] == "no changes"
    status = line.status()
    assert status["in_sync"] is True
    links = {tuple(d["between"]): d for d in status["link_delays"]}
    ab = links[("a", "b")]
    assert (ab["delay_us"], ab["mechanism"], ab["problem"]) == (5000, "delay line", "")
    assert [p["name"] for p in ab["processes"]] == ["delay-a", "delay-b"]
    assert all(p["pid"] == line.pid(p["name"][len("delay-"):]) for p in ab["processes"])
    # each direction of each slice: a queue, bound, nothing dropped
    assert sorted((q["from"], q["to"], q["slice"]) for q in ab["queues"]) == [
        ("a", "b", "cross"), ("a", "b", "probe"), ("b", "a", "cross"), ("b", "a", "probe")]
    assert all(q["bound"] and q["queue_full_drops"] == 0 and q["reader_full_drops"] == 0 for q in ab["queues"])
    text = line.vispd("status", line.name).stdout
    assert "  a-b  5ms by delay line (delay-a, delay-b): 4/4 queues bound" in text


def test_a_changed_delay_is_reloaded_in_place(line):
    before = line.pid("b")
    text = open(line.path).read()
    try:
        open(line.path, "w").write(text.replace("delay: 10ms", "delay: 20ms"))
        planned = line.vispd("plan", line.path).stdout
        assert "~ daemon delay-b in" in planned and "~ daemon delay-c in" in planned
        line.vispd("up", line.path)
        assert line.pid("b") == before  # SIGHUP, not a restart
        rtts, sent = ping(line, count=100)
        assert statistics.median(rtts) == pytest.approx(2 * (5 + 20), abs=2.0)  # which delay applies (precision: test 1)
    finally:
        open(line.path, "w").write(text)
        line.vispd("up", line.path)
    rtts, _ = ping(line, count=50)
    assert statistics.median(rtts) == pytest.approx(TARGET_A_C_MS, abs=2.0)


def test_a_killed_delay_process_fails_check_closed_and_up_restarts_it(line):
    os.kill(line.pid("b"), signal.SIGKILL)
    assert wait_for(lambda: not line.status()["in_sync"], timeout=10)
    links = {tuple(d["between"]): d for d in line.status()["link_delays"]}
    assert "delay-b not running" in links[("a", "b")]["problem"]
    check = line.vispd("check", line.name, "--converge", "2", "--timeout", "1", check=False)
    assert check.returncode == 1
    assert "daemon delay-b in" in check.stdout and "not running" in check.stdout
    # the link fails closed: nothing crosses it undelayed while its process is gone
    rtts, _ = ping(line, count=20, interval=0.05)
    assert rtts == []
    line.vispd("up", line.name)
    assert line.status()["in_sync"] is True
    rtts, sent = ping(line, count=50)
    assert len(rtts) == sent and statistics.median(rtts) == pytest.approx(TARGET_A_C_MS, abs=2.0)


def test_up_refuses_a_declared_delay_where_no_mechanism_exists(tmp_path):
    name = unique_name("hi")
    path = tmp_path / f"{name}.yaml"
    path.write_text(TOPOLOGY.replace("NAME", name))
    env = {**os.environ, "VISPD_STATE_DIR": str(tmp_path / "state"), "VISPD_DELAY_MECHANISM": "none"}
    try:
        refused = vispd("up", str(path), check=False, env=env)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            "vispd: link a-b (and 2 more): declares delay/jitter/loss, but this kernel has neither netem nor "
            "NFQUEUE with iptables; refusing to build it undelayed")
        assert not [n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}.")]
        assert not (tmp_path / "state" / name).exists()  # no state, no credentials, no journal
        plan = vispd("plan", str(path), env=env).stdout.splitlines()
        assert plan[1].startswith("  a-b  5ms: not realised")
        # a topology without declarations is not affected
        plain = tmp_path / f"{name}p.yaml"
        plain.write_text(re.sub(r", (delay|loss): \w+%?", "", TOPOLOGY).replace("NAME", f"{name}p"))
        assert "delay" not in plain.read_text()
        assert vispd("plan", str(plain), env=env).returncode == 0
    finally:
        vispd("down", name, check=False, env=env)
