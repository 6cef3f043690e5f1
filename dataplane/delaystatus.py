"""What the kernel says about the delay line's queues in a namespace: for each bound queue,
the packets held now, those dropped because the queue was full or its reader's buffer was,
and the last packet id (nfqueue.parse_queue_stats). A queue that is not listed has no
reader bound. I/O: reads /proc/net/netfilter/nfnetlink_queue inside the namespace.
"""
from __future__ import annotations

import contextlib

from . import netns, nfqueue

PROC_QUEUES = "/proc/thread-self/net/netfilter/nfnetlink_queue"  # the calling thread's namespace


def queue_stats(ns: str) -> dict[int, dict[str, int]]:
    """queue number -> its counters, in namespace `ns` ("" = here); {} when the namespace or
    the NFQUEUE module is not there."""
    try:
        with netns.entered(ns) if ns else contextlib.nullcontext():
            with open(PROC_QUEUES) as handle:
                text = handle.read()
    except OSError:
        return {}
    return {row["queue"]: row for row in nfqueue.parse_queue_stats(text)}
