"""ExaBGP 5.0 with the border router's hot spots optionally patched away, to measure what
each costs (bench/bgpborder.py). A prototype for issue 12, NOT what vispd runs. Run as
`python3 -m bench.exabgp_patched server CONF` with any of:

  HB_NOCOPY=1        `Neighbor.remove_self` deep-copies every route an API command injects
                     (copy.deepcopy of the Change: NLRI + attributes, ~100 objects) before
                     it even looks at the next hop; only `next-hop self` needs rewriting.
                     Patched: routes with an explicit next hop (all the border sends) are
                     injected as they are. Safe for commands naming one neighbor (the
                     border's): no two RIBs share a Change.
  HB_ASYNC_LIMIT=N   ExaBGP runs API commands as generators, 50 steps (routes) per reactor
                     loop (`ASYNC.LIMIT`), and the loop then sleeps up to `reactor.speed`/100
                     (10 ms) when no peer is busy: a backlog of injected routes drains at
                     about 50 routes per 10 ms. Patched: N steps per loop.

Logging is switched with ExaBGP's own settings (exabgp.log.processes=false: a log line per
injected route; exabgp.log.statistics=false: a line per UPDATE). I/O: it is ExaBGP.
"""
from __future__ import annotations

import os
import sys


def patch() -> list[str]:
    """Apply the patches the environment asks for; returns their names."""
    applied = []
    if os.environ.get("HB_NOCOPY"):
        from exabgp.bgp.neighbor import Neighbor

        original = Neighbor.remove_self

        def remove_self(self, change):
            if not change.nlri.nexthop.SELF:
                return change          # nothing to rewrite: no copy
            return original(self, change)

        Neighbor.remove_self = remove_self
        applied.append("nocopy")
    if os.environ.get("HB_ASYNC_LIMIT"):
        from exabgp.reactor.asynchronous import ASYNC

        ASYNC.LIMIT = int(os.environ["HB_ASYNC_LIMIT"])
        applied.append(f"async_limit={ASYNC.LIMIT}")
    return applied


def main() -> None:
    patch()
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    exabgp_main()


if __name__ == "__main__":
    main()
