"""dataplane.delayreload.plan_reload: what a SIGHUP changes, worked out without a kernel. Pure."""
from __future__ import annotations

import pytest

from dataplane.delayconfig import LineConfig, LinkDelay
from dataplane.delayreload import ReloadPlan, plan_reload

A = LinkDelay(queues=(0,), delay_us=5000, netns="n1", device="v-a")
B = LinkDelay(queues=(1,), delay_us=2000, netns="n1", device="v-b")


def config(*links, **kwargs) -> LineConfig:
    return LineConfig(links=links, **kwargs)


def test_nothing_changes():
    plan = plan_reload(config(A, B), config(A, B))
    assert plan == ReloadPlan(retune=((("n1", 0), A), (("n1", 1), B)))


def test_a_new_delay_only_retunes():
    slower = LinkDelay(queues=(0,), delay_us=15000, netns="n1", device="v-a")
    plan = plan_reload(config(A), config(slower))
    assert plan.retune == ((("n1", 0), slower),) and not (plan.bind or plan.replace or plan.install)


def test_new_loss_or_queues_swap_the_chain():
    lossy = LinkDelay(queues=(0,), delay_us=5000, netns="n1", device="v-a", loss=0.1)
    assert plan_reload(config(A), config(lossy)).replace == (lossy,)
    wider = LinkDelay(queues=(0, 1), delay_us=5000, netns="n1", device="v-a")
    plan = plan_reload(config(A), config(wider))
    assert plan.replace == (wider,) and plan.bind == ((wider, 1),) and plan.unbind == ()


def test_links_added_and_removed():
    plan = plan_reload(config(A), config(B))
    assert plan.bind == ((B, 1),) and plan.install == (B,)
    assert plan.unbind == (("n1", 0),) and plan.remove == (A,)


def test_the_same_queue_number_in_another_namespace_is_another_queue():
    moved = LinkDelay(queues=(0,), delay_us=5000, netns="n2", device="v-a")
    plan = plan_reload(config(A), config(moved))
    assert plan.bind == ((moved, 0),) and plan.unbind == (("n1", 0),)
    assert plan.install == (moved,) and plan.remove == (A,)


def test_workers_need_a_restart():
    with pytest.raises(ValueError, match="restart"):
        plan_reload(config(A), config(A, workers=2))
