"""dataplane.delayrules: the delay line's iptables-restore scripts and netem's tc lines. Pure."""
from __future__ import annotations

import pytest

from dataplane.delayrules import (DelayRules, chain_name, netem_limit, render_iptables,
                                  render_iptables_delete, render_iptables_replace, render_netem,
                                  restore_argv)


def test_arrival_rules_drop_then_queue():
    script = render_iptables(DelayRules("v-dnvr", "in", (3,), loss=0.001), owner="abilene")
    assert script.splitlines() == [
        "*raw",
        ":vdly-in-v-dnvr - [0:0]",
        '-A PREROUTING -i v-dnvr -m comment --comment "vispd-delay abilene" -j vdly-in-v-dnvr',
        "-A vdly-in-v-dnvr -m statistic --mode random --probability 0.001 -j DROP",
        "-A vdly-in-v-dnvr -j NFQUEUE --queue-num 3",
        "COMMIT",
    ]


def test_no_loss_no_statistic_and_no_bypass():
    script = render_iptables(DelayRules("r-a", "in", (0,)))
    assert "statistic" not in script
    assert "--queue-bypass" not in script  # fails closed without its process
    assert '--comment "vispd-delay"' in script


def test_several_queues_balance_and_forward_direction():
    script = render_iptables(DelayRules("to-sttl", "forward", (4, 5, 6)))
    assert script.startswith("*mangle\n")
    assert "-A FORWARD -o to-sttl" in script
    assert "-j NFQUEUE --queue-balance 4:6" in script


def test_delete_mirrors_install():
    rules = DelayRules("r-a", "in", (0,), loss=0.25)
    install, delete = render_iptables(rules, "x"), render_iptables_delete(rules, "x")
    jump = [line for line in install.splitlines() if line.startswith("-A PREROUTING")][0]
    assert "-D" + jump[2:] in delete.splitlines()
    assert delete.splitlines()[-3:] == ["-F vdly-in-r-a", "-X vdly-in-r-a", "COMMIT"]


def test_chain_names_fit_iptables():
    assert len(chain_name("a" * 15, "forward")) <= 28


@pytest.mark.parametrize("kwargs", [dict(direction="out"), dict(queues=()), dict(queues=(1, 3)),
                                    dict(loss=1.0), dict(loss=-0.1), dict(device=""), dict(device="x" * 16)])
def test_bad_rules_are_refused(kwargs):
    base = dict(device="r-a", direction="in", queues=(0,), loss=0.0)
    with pytest.raises(ValueError):
        DelayRules(**{**base, **kwargs})


def test_probability_is_written_in_full():
    assert "--probability 0.000015 " in render_iptables(DelayRules("r-a", "in", (0,), loss=1.5e-5))


def test_netem_under_a_slice_class():
    lines = render_netem("to-dnvr", 0x2a, delay_us=8000, limit=5000)
    assert lines == ["qdisc replace dev to-dnvr parent 1:2a handle 2a: netem limit 5000 delay 8000us"]


def test_netem_with_jitter_keeps_fifo_order_and_loss():
    lines = render_netem("to-dnvr", 0xffff, delay_us=8000, jitter_us=500, loss=0.001)
    assert lines[0] == ("qdisc replace dev to-dnvr parent 1:ffff handle ffff: netem limit 1000 "
                        "delay 8000us 500us loss 0.1%")
    assert lines[1] == "qdisc replace dev to-dnvr parent ffff:1 pfifo limit 1000"


def test_netem_refuses_htb_root_classes():
    with pytest.raises(ValueError):
        render_netem("x", 1, delay_us=1)


def test_netem_limit_covers_the_bandwidth_delay_product():
    # 1 Gbit/s for 37 ms = 4.6 MB = 3083 full-size packets; twice that
    assert netem_limit(10**9, 37000) == 6167
    assert netem_limit(10**6, 1000) == 1000


def test_scripts_are_applied_inside_their_namespace():
    assert restore_argv("vispd.t.b.s") == ["ip", "netns", "exec", "vispd.t.b.s", "iptables-restore", "--noflush"]
    assert restore_argv("") == ["iptables-restore", "--noflush"]


def test_replace_swaps_the_chain_in_one_commit_and_keeps_the_jump():
    script = render_iptables_replace(DelayRules("r-a", "in", (2, 3), loss=0.05))
    assert script.splitlines() == [
        "*raw", ":vdly-in-r-a - [0:0]",
        "-A vdly-in-r-a -m statistic --mode random --probability 0.05 -j DROP",
        "-A vdly-in-r-a -j NFQUEUE --queue-balance 2:3", "COMMIT"]
    assert "PREROUTING" not in script and script.count("COMMIT") == 1
