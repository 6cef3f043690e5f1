"""The helper's FIB writer thread: netlink batches are written while the main thread goes on
parsing and selecting (issue 12's pipeline: parse + RIB in one thread, install in another).
I/O: it owns the Fib (dataplane/fib.py) while it runs.

The main thread takes a batch of operations from the speaker, records them as done at once
(`Speaker.fib_taken`, so the next batch is computed against what the kernel will hold) and
queues them here; the kernel's answers come back through `results()`: failed operations are
undone in the speaker's mirror (`Speaker.fib_failed`), a failed netlink socket asks for a
resynchronisation from the kernel, as before. At most MAX_IN_FLIGHT batches wait, so a slow
kernel slows the reader down instead of piling routes up. The kernel's work (most of a
route's cost) releases the GIL, so it runs beside the main thread's Python."""
from __future__ import annotations

import queue
import threading

MAX_IN_FLIGHT = 2
_STOP = object()


class FibWorker:
    def __init__(self, fib):
        self.fib = fib
        self._todo: queue.Queue = queue.Queue(maxsize=MAX_IN_FLIGHT)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fib")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            try:
                if item is _STOP:
                    return
                ops, token = item
                try:
                    self._done.put((ops, token, self.fib.apply(ops), None))
                except Exception as exc:   # OSError: the socket failed; anything else: a bug, reported
                    self._done.put((ops, token, [], exc))
            finally:
                self._todo.task_done()

    def submit(self, ops, token) -> None:
        """Queue a batch (blocks while MAX_IN_FLIGHT batches wait)."""
        self._todo.put((ops, token))

    def results(self):
        """(ops, token, errors, exception) of every batch written since the last call."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def idle(self) -> None:
        """Wait until every queued batch is written (the Fib is then the caller's to use)."""
        self._todo.join()

    def stop(self) -> None:
        self._todo.put(_STOP)
        self._thread.join(timeout=30)
