"""The BFD watcher's life cycle against a UNIX socket speaking bfdd's control protocol (the
bytes FRR 8.4's bfdd sends; the real bfdd is in tests/netns/test_bfd_failover.py): it
subscribes, delivers notifications as events, reports the socket lost once, and comes
back when the socket does."""
from __future__ import annotations

import json
import queue
import socket

from bgp.bfd_watch import BfdWatcher
from bgp.bfdctl import BMT_NOTIFY, BMT_RESPONSE, HEADER, BfdControlLost, BfdControlUp, BfdState, subscribe_message


def frame(kind: int, document: dict, ident: int = 0) -> bytes:
    payload = json.dumps(document).encode()
    return HEADER.pack(len(payload), ident, kind, 1) + payload


def next_event(events: queue.SimpleQueue, kind):
    while True:
        event = events.get(timeout=5)
        if isinstance(event, kind):
            return event


def test_the_watcher_subscribes_delivers_and_survives_bfdd_restarting(tmp_path):
    path = str(tmp_path / "bfdd.sock")
    events: queue.SimpleQueue = queue.SimpleQueue()
    watcher = BfdWatcher(path, events.put, retry=0.02).start()
    try:
        assert "bfdd.sock" in next_event(events, BfdControlLost).reason          # not there yet
        for restart in range(2):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(path)
            server.listen(1)
            server.settimeout(5)
            connection, _ = server.accept()
            assert connection.recv(64) == subscribe_message()
            next_event(events, BfdControlUp)
            state = {"op": "status", "peer-address": "192.0.2.0", "state": "up", "diagnostics": 0}
            connection.sendall(frame(BMT_RESPONSE, {"status": "ok"}, 1) + frame(BMT_NOTIFY, state))
            event = next_event(events, BfdState)
            assert (event.peer, event.state, restart) == ("192.0.2.0", "up", restart)
            connection.close()
            server.close()
            tmp_path.joinpath("bfdd.sock").unlink()
            assert "closed" in next_event(events, BfdControlLost).reason
    finally:
        watcher.stop()
