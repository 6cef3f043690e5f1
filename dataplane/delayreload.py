"""Reconfiguring a running delay line on SIGHUP, with no gap: `plan_reload` (pure) compares
the old and new configurations, `apply_reload` carries the plan out on a `Server`.

Order matters so that no packet ever passes undelayed and none is dropped for want of a
reader: (1) bind the new queues, (2) retune the queues kept (the new delay applies to
packets arriving from now on; held ones keep their due time), (3) rules: swap the chains
whose loss or queues changed in one iptables transaction (`render_iptables_replace`),
install new chains, remove the chains of links no longer served, (4) release what the
dropped queues hold and unbind them. Changing `workers` or `ready-socket` needs a
restart.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import delaystamp
from .delayapply import arrivals, remove_rules, restore
from .delayconfig import LineConfig, LinkDelay
from .delayrules import render_iptables, render_iptables_replace

QueueKey = tuple[str, int]  # (namespace, queue number)
RulesKey = tuple[str, str, str]  # (namespace, device, direction)


@dataclass(frozen=True)
class ReloadPlan:
    retune: tuple[tuple[QueueKey, LinkDelay], ...] = ()  # kept queues and their new link
    bind: tuple[tuple[LinkDelay, int], ...] = ()  # queues to bind
    unbind: tuple[QueueKey, ...] = ()  # queues no longer served
    install: tuple[LinkDelay, ...] = ()  # new chains
    replace: tuple[LinkDelay, ...] = ()  # same chain, other loss or queues
    remove: tuple[LinkDelay, ...] = ()  # chains no longer wanted


def _queues(config: LineConfig) -> dict[QueueKey, LinkDelay]:
    return {(link.netns, q): link for link in config.links for q in link.queues}


def _rules(config: LineConfig) -> dict[RulesKey, LinkDelay]:
    return {(link.netns, link.device, link.direction): link for link in config.links if link.device}


def plan_reload(old: LineConfig, new: LineConfig) -> ReloadPlan:
    """What changes between two configurations of one process (pure)."""
    if new.workers != old.workers:
        raise ValueError("changing the number of workers needs a restart")
    if new.ready_socket != old.ready_socket:
        raise ValueError("changing the ready socket needs a restart")
    old_queues, new_queues = _queues(old), _queues(new)
    old_rules, new_rules = _rules(old), _rules(new)
    return ReloadPlan(
        retune=tuple((key, link) for key, link in new_queues.items() if key in old_queues),
        bind=tuple((link, key[1]) for key, link in new_queues.items() if key not in old_queues),
        unbind=tuple(key for key in old_queues if key not in new_queues),
        install=tuple(link for key, link in new_rules.items() if key not in old_rules),
        replace=tuple(link for key, link in new_rules.items()
                      if key in old_rules and old_rules[key].rules() != link.rules()),
        remove=tuple(link for key, link in old_rules.items() if key not in new_rules))


def apply_reload(server, new: LineConfig, plan: ReloadPlan, bind) -> None:
    """Carry `plan` out on a running delayserver.Server (single-process mode), binding new
    queues with `bind(assignments, config)`. RuntimeError if a rule is refused: the queues
    are then already bound and keep serving."""
    server.add_queues(bind(list(plan.bind), new))
    period = new.jitter_period_us * 1000 if new.jitter_period_us is not None else None
    for key, link in plan.retune:
        server.queue(key).schedule.retune(link.delay_us * 1000, link.jitter_us * 1000, period)
    server.reconfigure(new)
    _apply_rules(new.owner, plan)
    for key in plan.unbind:
        entry = server.drop_queue(key)
        if entry.schedule.last_seen_id is not None:
            entry.sock.accept_through(entry.schedule.last_seen_id)
        entry.sock.close()


def _apply_rules(owner: str, plan: ReloadPlan) -> None:
    results = [restore(link.netns, render_iptables_replace(link.rules())) for link in plan.replace]
    delaystamp.fresh_stamps(arrivals(list(plan.install)))
    results += [restore(link.netns, render_iptables(link.rules(), owner)) for link in plan.install]
    for link in plan.remove:
        remove_rules(link.netns, [link], owner)
    refused = [r.stderr.strip() for r in results if r.returncode != 0]
    if refused:
        raise RuntimeError(f"rules refused: {refused[0]}")
