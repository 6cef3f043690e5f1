"""dataplane.delayline's configuration: JSON in, the same JSON out, bad input refused. Pure."""
from __future__ import annotations

import json

import pytest

from dataplane.delayline import LineConfig, LinkDelay, command, parse_config, render_config


def sample() -> LineConfig:
    return LineConfig(links=(LinkDelay(queues=(0,), delay_us=8000, jitter_us=500, loss=0.001,
                                       netns="vispd.abilene.denver.plb", device="v-sttl"),
                             LinkDelay(queues=(1, 2), delay_us=10048, device="v-kscy", direction="in")),
                      early_us=120, realtime="on", workers=2, owner="abilene", jitter_period_us=2000, seed=4)


def test_render_then_parse_is_the_identity():
    config = sample()
    assert parse_config(render_config(config)) == config


def test_defaults():
    config = parse_config(json.dumps({"links": [{"queues": 3, "delay": "37ms"}]}))
    assert config.links == (LinkDelay(queues=(3,), delay_us=37000),)
    assert (config.early_us, config.realtime, config.workers) == (150, "auto", 1)


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
