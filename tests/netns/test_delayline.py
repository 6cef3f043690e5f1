"""The delay line on a real path a -- r -- b (namespaces hd-TAG-*, r forwarding): RTT, jitter,
loss, TCP, several workers and namespaces, and a clean stop that removes its rules."""
from __future__ import annotations

import json
import math
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import pytest

from bench.delay import IPERF_PORT, install_sink, ping_rtts, sink_count, start_iperf_server, within_fraction
from bench.delaypath import B_ADDR, DelayLineProcess, DelayPath, ROOT
from dataplane import delaycaps, nfqueue
from dataplane.delayconfig import LineConfig, LinkDelay, render_config

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def nfqueue_works():
    if shutil.which("iptables-restore") is None:
        pytest.skip("needs iptables (apt iptables, the nft flavour) for NFQUEUE rules")
    caps = delaycaps.probe()
    if not caps.nfqueue:
        pytest.skip(f"this kernel cannot queue packets to user space: {caps.detail}")


@pytest.fixture
def path(nfqueue_works):
    with DelayPath() as built:
        yield built


def both_ways(path: DelayPath, one_way: str, *extra: str) -> None:
    path.delay_line("--queue", "0", "--delay", one_way, "--device", "r-a", *extra)
    path.delay_line("--queue", "1", "--delay", one_way, "--device", "r-b", *extra)


def cross_flow(path: DelayPath, seconds: int) -> subprocess.Popen:
    start_iperf_server(path)
    return path.popen(path.a, ["iperf3", "-c", B_ADDR, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def outside(rtts: list[float], sent: int, target: float) -> str:
    far = sorted(r for r in rtts if abs(r - target) > 1.0)
    return f"{sent - len(rtts)} lost, {len(far)} off by more than 1 ms: {far[:10]}"


def rtt_sample(path: DelayPath, target: float, loaded: bool) -> tuple[float, list[float], str]:
    """(fraction within 1 ms of target, RTTs, what was off) of 3 s of pings at 10 ms,
    under a 6 s iperf3 flow a -> b through the same delay line when `loaded`."""
    flow = cross_flow(path, 6) if loaded else None
    if flow:
        time.sleep(1.0)  # past slow start
    rtts, sent = ping_rtts(path, seconds=3)
    note = outside(rtts, sent, target)
    if flow:
        report = json.loads(flow.communicate(timeout=30)[0])
        mbps = report["end"]["sum_received"]["bits_per_second"] / 1e6
        assert mbps > 50, "the cross flow did not run"
        note += f"; cross flow {mbps:.0f} Mbit/s"
    return within_fraction(rtts, sent, target), rtts, note


def meets(path: DelayPath, target: float, loaded: bool, goal: float = 0.98) -> bool:
    """The goal met in one sample, or in a second one: the machine is shared, and a burst
    of someone else's kernel work can hold both cores for a few ms. A delay line that misses
    the goal misses it twice."""
    for attempt in (1, 2):
        fraction, rtts, note = rtt_sample(path, target, loaded)
        print(f"{'loaded' if loaded else 'idle'} attempt {attempt}: {fraction:.4f} within 1 ms of "
              f"{target} ms, median {statistics.median(rtts)} ms; {note}")
        assert statistics.median(rtts) == pytest.approx(target, abs=0.5)
        if fraction >= goal:
            return True
    return False


def test_rtt_is_twice_the_one_way_delay_idle_and_under_a_tcp_flow(path):
    both_ways(path, "10ms")
    assert meets(path, 20.0, loaded=False)
    assert meets(path, 20.0, loaded=True)


def jitter_judged(rtts: list[float], sent: int) -> tuple[bool, str]:
    offsets = [r - 10.0 for r in rtts]
    inside = sum(-2.3 <= o <= 2.3 for o in offsets) / sent  # jitter + print resolution + wake-up
    deciles = statistics.quantiles(offsets, n=10)
    spread = statistics.pstdev(o for o in offsets if abs(o) <= 2.3)
    ok = (inside >= 0.97 and -2.0 < deciles[0] < -1.0 and 1.0 < deciles[-1] < 2.3  # uniform: -/+1.6
          and 0.8 < spread < 1.5)  # uniform: 2/sqrt(3) = 1.15
    return ok, f"{inside:.3f} within +-2 ms; deciles {deciles[0]:.2f} .. {deciles[-1]:.2f}; sd {spread:.2f} ms"


def test_jitter_spreads_the_delay_as_declared(path):
    path.delay_line("--queue", "0", "--delay", "10ms", "--jitter", "2ms", "--device", "r-a", "--seed", "5")
    verdicts = []
    for attempt in (1, 2):  # a second sample only if the first was disturbed (see meets)
        ok, note = jitter_judged(*ping_rtts(path, seconds=3))
        print(f"attempt {attempt}: {note}")
        verdicts.append(note)
        if ok:
            return
    pytest.fail(" / ".join(verdicts))


def test_loss_is_binomial_and_dropped_in_the_kernel(path):
    install_sink(path)
    line = path.delay_line("--queue", "0", "--delay", "1ms", "--loss", "20%", "--device", "r-a")
    sent = 20000
    out = path.exec(path.a, [sys.executable, "-m", "bench.udpblast", "--dst", B_ADDR, "--rate", "50000",
                             "--seconds", str(sent / 50000)])
    assert out.returncode == 0, out.stderr
    time.sleep(0.2)
    received = sink_count(path)
    lost = sent - received
    sigma = math.sqrt(sent * 0.2 * 0.8)
    assert abs(lost - 0.2 * sent) < 4.5 * sigma, f"lost {lost} of {sent}"
    assert line.stop() == 0
    queued = sum(s["messages"] for s in line.stats)
    assert queued == received  # the dropped ones never reached user space


def tcp_intervals(report: dict) -> list[dict]:
    return [interval["streams"][0] for interval in report["intervals"]]


def test_tcp_reaches_its_window_bound_rate_over_the_delayed_path(path):
    both_ways(path, "10ms")
    start_iperf_server(path)
    out = path.exec(path.a, ["iperf3", "-c", B_ADDR, "-p", str(IPERF_PORT), "-t", "4", "-w", "1M", "-J"])
    report = json.loads(out.stdout)
    steady = tcp_intervals(report)[1:]
    window = statistics.median(s["snd_wnd"] for s in steady)  # what the receiver advertises
    bound_mbps = window * 8 / 0.020 / 1e6
    rate = statistics.median(s["bits_per_second"] for s in steady) / 1e6
    rtt_ms = statistics.median(s["rtt"] for s in steady) / 1000
    print(f"{rate:.0f} Mbit/s of a {bound_mbps:.0f} Mbit/s window bound, smoothed RTT {rtt_ms:.1f} ms")
    assert rtt_ms == pytest.approx(20.0, abs=2.0)
    assert rate >= 0.8 * bound_mbps
    assert sum(s["retransmits"] for s in tcp_intervals(report)) == 0  # nothing dropped on the line


def assert_held(rtts: list[float], sent: int, target: float) -> None:
    """Every ping answered, none before the declared delay (less the early release and the
    print resolution), half within 0.5 ms of it: the delay is applied, whatever the load."""
    assert len(rtts) == sent, f"{sent - len(rtts)} of {sent} pings lost"
    assert min(rtts) >= target - 0.3, sorted(rtts)[:5]
    assert statistics.median(rtts) == pytest.approx(target, abs=0.5)


def nfqueue_bindings(ns: str) -> list[dict[str, int]]:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                         capture_output=True, text=True).stdout
    return nfqueue.parse_queue_stats(out)


def test_forward_direction_holds_only_what_is_routed_out(path):
    path.delay_line("--queue", "0", "--delay", "6ms", "--device", "r-b", "--direction", "forward")
    assert "-A FORWARD -o r-b" in path.rules()
    rtts, sent = ping_rtts(path, seconds=1)
    assert_held(rtts, sent, 6.0)  # requests held once; replies go out r-a
    out = path.exec(path.a, ["ping", "-c", "3", "-i", "0.05", "198.19.1.2"]).stdout  # r itself: not forwarded
    assert max(float(x) for x in re.findall(r"time=([\d.]+)", out)) < 3.0


def test_stop_releases_what_it_holds_then_removes_its_rules(path):
    line = path.delay_line("--queue", "0", "--delay", "400ms", "--device", "r-a")
    assert "vdly-in-r-a" in path.rules() and len(nfqueue_bindings(path.r)) == 1
    ping = path.popen(path.a, ["ping", "-c", "1", "-W", "3", B_ADDR], stdout=subprocess.PIPE, text=True)
    time.sleep(0.1)  # the request is on the line
    started = time.monotonic()
    assert line.stop() == 0
    stopped_after = time.monotonic() - started
    reply = ping.communicate(timeout=10)[0]
    assert "1 received" in reply, reply
    assert float(re.search(r"time=([\d.]+)", reply).group(1)) >= 399
    assert stopped_after < 2.0
    assert "vdly" not in path.rules() and "NFQUEUE" not in path.rules()
    assert nfqueue_bindings(path.r) == []
    assert line.stats[0]["messages"] == 1


def test_a_balanced_link_over_two_workers(path):
    line = path.delay_line("--queue", "0-1", "--delay", "5ms", "--device", "r-a", "--workers", "2")
    assert len(line.ready["workers"]) == 2
    assert sorted(b["queue"] for b in nfqueue_bindings(path.r)) == [0, 1]
    assert "--queue-balance 0:1" in path.rules()
    rtts, sent = ping_rtts(path, seconds=1)
    assert_held(rtts, sent, 5.0)
    assert line.stop() == 0
    assert len(line.stats) == 2 and sum(s["messages"] for s in line.stats) == len(rtts)
    assert "vdly" not in path.rules() and nfqueue_bindings(path.r) == []


def test_one_process_serves_links_in_two_namespaces(path, tmp_path):
    config = LineConfig(links=(LinkDelay(queues=(0,), delay_us=3000, netns=path.r, device="r-a"),
                               LinkDelay(queues=(5,), delay_us=4000, netns=path.b, device="b-r")),
                        owner="test")
    config_file = tmp_path / "delayline.json"
    config_file.write_text(render_config(config))
    # runs in this test's own namespace; sockets and rules go into r and b
    proc = subprocess.Popen([sys.executable, "-m", "dataplane.delayline", "--config", str(config_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "ready" in json.loads(proc.stdout.readline())
        rtts, sent = ping_rtts(path, seconds=1)
        assert_held(rtts, sent, 7.0)  # a->b held 3 ms at r, then 4 ms at b
        assert [b["queue"] for b in nfqueue_bindings(path.b)] == [5]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert nfqueue_bindings(path.r) == nfqueue_bindings(path.b) == []
    assert "vdly" not in path.exec(path.b, ["iptables-save", "-t", "raw"]).stdout


def test_a_queue_already_taken_is_refused_and_installs_nothing(path):
    first = path.delay_line("--queue", "0", "--delay", "2ms", "--device", "r-a")
    with pytest.raises(RuntimeError, match="NFQUEUE 0"):
        DelayLineProcess(path.r, ["--queue", "0", "--delay", "1ms", "--device", "r-b"])
    assert "vdly-in-r-b" not in path.rules()
    rtts, sent = ping_rtts(path, seconds=0.5)
    assert len(rtts) == sent and min(rtts) >= 1.8  # the first one still holds every packet
    assert first.stop() == 0


def test_the_probe_finds_the_delay_line_here(nfqueue_works):
    caps = delaycaps.probe()
    assert caps.nfqueue
    assert delaycaps.choose(caps) in ("netem", "delayline")
    assert delaycaps.mechanism({delaycaps.FORCE_ENV: "none"}) is None


def test_sighup_reconfigures_live_without_an_undelayed_or_lost_packet(path, tmp_path):
    config_file = tmp_path / "delayline.json"
    first = LineConfig(links=(LinkDelay(queues=(0,), delay_us=5000, device="r-a"),), owner="test")
    config_file.write_text(render_config(first))
    line = path.delay_line("--config", str(config_file))
    ping = path.popen(path.a, ["ping", "-n", "-i", "0.005", "-c", "300", B_ADDR], stdout=subprocess.PIPE, text=True)
    time.sleep(0.6)
    second = LineConfig(links=(LinkDelay(queues=(0,), delay_us=15000, device="r-a"),
                               LinkDelay(queues=(1,), delay_us=2000, device="r-b")), owner="test")
    config_file.write_text(render_config(second))
    line.proc.send_signal(signal.SIGHUP)
    assert line.read_line("reloaded")["queues"] == [0, 1]
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", ping.communicate(timeout=30)[0])]
    assert len(rtts) == 300  # nothing lost across the reload
    assert min(rtts) >= 4.7  # nothing passed undelayed
    assert statistics.median(rtts[:50]) == pytest.approx(5.0, abs=0.5)
    assert statistics.median(rtts[-50:]) == pytest.approx(17.0, abs=0.5)  # 15 ms at r-a, 2 at r-b
    assert "vdly-in-r-b" in path.rules()

    third = LineConfig(links=(LinkDelay(queues=(1,), delay_us=2000, device="r-b", loss=0.5),), owner="test")
    config_file.write_text(render_config(third))
    line.proc.send_signal(signal.SIGHUP)
    assert line.read_line("reloaded")["queues"] == [1]
    rules = path.rules()
    assert "vdly-in-r-a" not in rules and "--probability 0.5" in rules
    assert [b["queue"] for b in nfqueue_bindings(path.r)] == [1]
    assert line.stop() == 0
    assert line.stats[0]["reloads"] == 2
    assert "vdly" not in path.rules() and nfqueue_bindings(path.r) == []


def test_a_bad_reload_keeps_the_running_configuration(path, tmp_path):
    config_file = tmp_path / "delayline.json"
    config_file.write_text(render_config(LineConfig(links=(LinkDelay(queues=(0,), delay_us=4000, device="r-a"),))))
    line = path.delay_line("--config", str(config_file))
    config_file.write_text('{"links": [{"queues": [0], "delay": "4"}]}')  # no unit
    line.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    rtts, sent = ping_rtts(path, seconds=0.3)
    assert_held(rtts, sent, 4.0)
    assert line.stop() == 0 and line.stats[0]["reloads"] == 0
