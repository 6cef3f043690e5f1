"""The delay line: a process that holds packets in the kernel's NFQUEUE queues and releases
them after a fixed one-way delay (plus optional jitter). Touches the kernel (netlink
sockets, iptables rules in the namespaces it serves); its configuration is the pure
`dataplane.delayconfig`.

    python3 -m dataplane.delayline --config FILE
    python3 -m dataplane.delayline --queue 0 --delay 37ms [--jitter 1ms] [--loss 0.1%]
                                   [--device r-a --direction in] [--netns NS]

Packets stay in the kernel: the process reads metadata-only messages in batches
(`dataplane.nfqueue`), keeps one (due time, last id) pair per batch (`delaysched`), and
at each deadline (`rtclock.DeadlineTimer`, released `early` ahead to absorb the wake-up)
sends one verdict accepting every id up to the last one due. Loss is dropped by the
kernel before queueing (the rules of `delayrules`), never here.

Under load (a read of at least 4 messages) the loop pauses up to `coalesce` (200 us, never
past the next release) before reading again, so the next batch is larger: about 25-40%
less CPU per packet at 100-150k packets/s (bench figures in the report). Packets read
after a pause are stamped mid-pause: their delay is exact within +-coalesce/2. Sparse
traffic (pings) is read at once.

One process serves any number of (namespace, device, direction) links: sockets and rules
are made inside each link's named namespace. A link may spread over several queues
(`--queue-balance`, chosen by the kernel per flow, so a flow keeps its order); with
`workers` > 1 the queues are shared round-robin among forked processes, one per core.

Life cycle: bind every queue, install the rules (when the config names the device),
listen on the `ready-socket` if the config names one, print one JSON line
`{"ready": ...}`; on SIGHUP re-read the config file and apply only the
difference, live (`delayreload`: no packet passes undelayed or is lost meanwhile), then
print `{"reloaded": ...}`; on SIGTERM/SIGINT remove the rules, release what is held when
it is due, unbind, print `{"stats": ...}` and exit 0 (the ready socket is closed as soon
as stopping begins).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import asdict

from model.linkprops import parse_duration_us, parse_loss
from .delayapply import install_rules
from .delayconfig import DEFAULT_COALESCE_US, DEFAULT_EARLY_US, LineConfig, LinkDelay, parse_config
from .delayserver import Server, bind_queues, close_ready, emit, ignore_reload, listen_ready
from .delayworkers import run_workers
from .rtclock import set_timer_slack_ns


def run(config: LineConfig, config_path: str = "") -> int:
    """Serve `config` in this process (one worker) or in forked workers; returns an exit code."""
    set_timer_slack_ns(1)
    assignments = [(link, q) for link in config.links for q in link.queues]
    if config.workers <= 1:
        server = Server(bind_queues(assignments, config), config, config_path)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, server.request_stop)
        signal.signal(signal.SIGHUP, server.request_reload if config_path else ignore_reload)
        install_rules(config)
        server.ready = listen_ready(config.ready_socket)
        emit("ready", {"pid": os.getpid(), "queues": server.stats.queues})
        try:
            emit("stats", asdict(server.serve()))
        finally:
            close_ready(server.ready, config.ready_socket)
        return 0
    return run_workers(config, assignments)


def _args_config(args: argparse.Namespace) -> LineConfig:
    low, _, high = args.queue.partition("-")
    queues = tuple(range(int(low), int(high or low) + 1))
    link = LinkDelay(queues=queues, delay_us=parse_duration_us(args.delay),
                     jitter_us=parse_duration_us(args.jitter), loss=parse_loss(args.loss),
                     netns=args.netns, device=args.device, direction=args.direction)
    return LineConfig(links=(link,), early_us=parse_duration_us(args.early),
                      coalesce_us=parse_duration_us(args.coalesce), realtime=args.realtime,
                      workers=args.workers, owner=args.owner, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m dataplane.delayline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="JSON config (several links); or describe one link with the options below")
    parser.add_argument("--queue", default="0", help="queue number, or a range A-B (--queue-balance)")
    parser.add_argument("--delay", help="one-way delay, e.g. 37ms")
    parser.add_argument("--jitter", default="0us")
    parser.add_argument("--loss", default="0%")
    parser.add_argument("--netns", default="", help="named namespace of the queue and rules")
    parser.add_argument("--device", default="", help="install rules matching this device")
    parser.add_argument("--direction", default="in", choices=("in", "forward"))
    parser.add_argument("--early", default=f"{DEFAULT_EARLY_US}us", help="release this much ahead")
    parser.add_argument("--coalesce", default=f"{DEFAULT_COALESCE_US}us",
                        help="under load, let reads gather this long (0us: read at once)")
    parser.add_argument("--realtime", default="auto", choices=("on", "off", "auto"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--owner", default="")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    try:
        if args.config:
            with open(args.config) as handle:
                config = parse_config(handle.read())
        elif args.delay:
            config = _args_config(args)
        else:
            parser.error("give --config FILE or --delay")
    except (ValueError, KeyError) as error:
        print(f"delayline: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        return run(config, args.config or "")
    except (OSError, RuntimeError) as error:
        print(f"delayline: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
