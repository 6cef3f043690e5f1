"""dataplane.delayline's configuration: JSON in, the same JSON out, bad input refused. Pure."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dataplane.delayconfig import LineConfig, LinkDelay, command, parse_config, render_config


def sample() -> LineConfig:
    return LineConfig(links=(LinkDelay(queues=(0,), delay_us=8000, jitter_us=500, loss=0.001,
                                       netns="vispd.abilene.denver.plb", device="v-sttl"),
                             LinkDelay(queues=(1, 2), delay_us=10048, device="v-kscy", direction="in")),
                      early_us=120, coalesce_us=0, realtime="on", workers=2, owner="abilene", jitter_period_us=2000, seed=4)


def test_render_then_parse_is_the_identity():
    config = sample()
    assert parse_config(render_config(config)) == config


def test_defaults():
    config = parse_config(json.dumps({"links": [{"queues": 3, "delay": "37ms"}]}))
    assert config.links == (LinkDelay(queues=(3,), delay_us=37000),)
    assert (config.early_us, config.coalesce_us, config.realtime, config.workers) == (75, 200, "auto", 1)


@pytest.mark.parametrize("links", [[{"queues": [0], "delay": "37"}],
                                   [{"queues": [0], "delay": "1ms", "loss": "100%"}],
                                   [{"queues": [0, 2], "delay": "1ms", "device": "r-a"}],
                                   [{"queues": [0], "delay": "1ms", "device": "r-a", "direction": "out"}],
                                   [{"delay": "1ms"}]])
def test_bad_configs_are_refused(links):
    with pytest.raises((ValueError, KeyError)):
        parse_config(json.dumps({"links": links}))


def test_command_runs_the_module():
    assert command("/run/vispd/x.json", python="/usr/bin/python3") == [
        "/usr/bin/python3", "-m", "dataplane.delayline", "--config", "/run/vispd/x.json"]


@pytest.mark.parametrize("change", [dict(realtime="fifo"), dict(workers=0), dict(links=())])
def test_bad_process_settings_are_refused(change):
    with pytest.raises(ValueError):
        dataclasses.replace(sample(), **change)


def test_jitter_beyond_the_delay_and_shared_queues_are_refused():
    with pytest.raises(ValueError, match="jitter"):
        LinkDelay(queues=(0,), delay_us=1000, jitter_us=2000)
    with pytest.raises(ValueError, match="queue"):
        LinkDelay(queues=(70000,), delay_us=1000)
    twice = LinkDelay(queues=(0,), delay_us=1000, netns="n")
    with pytest.raises(ValueError, match="same queue"):
        LineConfig(links=(twice, dataclasses.replace(twice, delay_us=2000)))
    LineConfig(links=(twice, dataclasses.replace(twice, netns="m")))  # other namespace: fine
