"""The engine's event loop (I/O): one pty on one side, one TUN on the other.

Owns the data path and its batching: large pty reads decoded into many frames at once, IP
frames written straight to the TUN, up to `BATCH` TUN packets encoded into one pty write,
an output queue with back-pressure on the TUN, queue management against the GRE socket
that feeds the pty (see `_read_pty` and `greguard`), timers, signals (SIGTERM closes the
link with an LCP Terminate, SIGUSR1 logs counters), the status file, and the TUN's
creation once IPCP is up. The PPP logic itself is `session` (pure).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import select
import signal
import subprocess
import time

from . import greguard, hdlc, session, tun

BATCH = 256              # TUN packets encoded per pty write at most
READ_SIZE = 1 << 16      # bytes per pty read
PTY_READS = 64           # pty reads per wake-up at most (4 KiB each)
DECODE_BUDGET = 128 << 10  # bytes decoded per wake-up at most; more is dropped (see _read_pty)
GRE_BACKLOG = 512 << 10  # GRE queue (bytes of memory) above which we drop (see _read_pty)
HIGH_WATER = 1 << 20     # pty output queued before we stop reading the TUN
GRE_RCVBUF = 2 << 20     # receive queue given to pptpd's/pptp's GRE socket (kernel doubles it)
log = logging.getLogger("vispd.pptp")


class Relay:
    """The event loop between one pty and (once the link is up) one TUN."""

    def __init__(self, sess: session.Session, pty_fd: int, *, tun_name: str, routes: list[str],
                 status_file: str | None = None, child: subprocess.Popen | None = None,
                 up_deadline: float | None = None, gre_owner: int | None = None) -> None:
        self.session, self.pty = sess, pty_fd
        self.tun_name, self.routes, self.status_file = tun_name, routes, status_file
        self.child, self.up_deadline, self.gre_owner = child, up_deadline, gre_owner
        self.gre_probe = None  # our duplicate of the GRE socket that feeds the pty
        self.tun: int | None = None
        self.decoder = hdlc.Decoder()
        self.pending = bytearray()
        self.stats = {"to_tun": 0, "from_tun": 0, "tun_drops": 0, "pty_dropped_bytes": 0}
        self.stop_requested = 0
        self.stop_reason = "engine stopped"
        self.hangup = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.poller = select.epoll()
        self.poller.register(self.pty, select.EPOLLIN)
        self.poller.register(self._wake_r, select.EPOLLIN)
        self._watched: int | None = None  # a pidfd: when that process ends, so do we
        self._pty_mask = select.EPOLLIN
        self._tun_reading = False

    def watch(self, pid: int, what: str) -> None:
        """End the link when process `pid` ends (pptpd: stopping it by PID must end its
        calls, but pptpd leaves its call processes and their engines running)."""
        try:
            self._watched = os.pidfd_open(pid)
        except OSError as error:
            log.warning("cannot watch %s (pid %d): %s", what, pid, error)
            return
        self._watched_what = what
        self.poller.register(self._watched, select.EPOLLIN)

    # ---- signals -----------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGUSR1, self._on_report)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_stop(self, *_):
        self.stop_requested += 1

    def _on_report(self, *_):
        log.info("stats: %s, pty queue %d bytes, reading tun %s, decoder bad FCS %d runts %d aborted %d, "
                 "phase %s", self.stats, len(self.pending), self._tun_reading, self.decoder.bad_fcs,
                 self.decoder.runts, self.decoder.aborted, self.session.phase)

    def _on_hangup(self, *_):
        self.hangup = True

    # ---- output ------------------------------------------------------------------------
    def _flush(self) -> None:
        while self.pending:
            try:
                written = os.write(self.pty, self.pending)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno in (errno.EIO, errno.EPIPE):
                    self.hangup = True
                    self.pending.clear()
                    return
                raise
            del self.pending[:written]
        want = select.EPOLLIN | (select.EPOLLOUT if self.pending else 0)
        if want != self._pty_mask:
            self.poller.modify(self.pty, want)
            self._pty_mask = want
        if self.tun is not None:
            reading = len(self.pending) < HIGH_WATER
            if reading != self._tun_reading:
                self.poller.modify(self.tun, select.EPOLLIN if reading else 0)
                self._tun_reading = reading

    # ---- input -------------------------------------------------------------------------
    def _read_pty(self, now: float) -> None:
        """Drain the pty and decode what it held, or drop part of it when the GRE queue
        behind it stays long.

        A pty read returns at most ~4 KiB (the line discipline's buffer), so we read until
        it is empty rather than going back to epoll after each read. When we decode slower
        than frames arrive, the queue builds up in the GRE socket of pptpd/pptp (deepened,
        see greguard). Were it to overflow, the hole in the GRE sequence would make pptpd
        hold every later packet until the hole times out, stalling TCP for hundreds of ms.
        So we act as the bottleneck's queue manager: while that queue holds more than
        GRE_BACKLOG bytes, the newest chunk of each wake-up is dropped here (ordinary loss,
        repaired by a fast retransmit, which also tells TCP to slow down). Without a handle
        on the GRE socket, anything beyond DECODE_BUDGET per wake-up is dropped instead."""
        chunks, kept, dropped = [], 0, 0
        for _ in range(PTY_READS):
            try:
                data = os.read(self.pty, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                data = b""  # EIO: the other side of the pty is gone
            if not data:
                self.hangup = True
                break
            if kept < DECODE_BUDGET:
                chunks.append(data)
                kept += len(data)
            else:
                dropped += len(data)
        if len(chunks) > 1 and self.gre_probe is not None and not dropped:
            try:
                backlog = greguard.queued_bytes(self.gre_probe)
            except OSError:
                backlog = 0
            if backlog > GRE_BACKLOG:
                dropped = len(chunks.pop())
        if chunks:
            self._deliver(b"".join(chunks) if len(chunks) > 1 else chunks[0], now)
        if dropped:
            self.stats["pty_dropped_bytes"] += dropped
            self.decoder.discard()  # the frame cut by the drop is garbage: resynchronise

    def _deliver(self, data: bytes, now: float) -> None:
        tun_fd, sess = self.tun, self.session
        write, header = os.write, session.IP_HEADER
        delivered = 0
        for frame in self.decoder.feed(data):
            if tun_fd is not None and frame[:4] == header:
                try:
                    write(tun_fd, frame[4:])
                    delivered += 1
                except OSError:
                    self.stats["tun_drops"] += 1
            else:
                sess.receive(frame, now)
                if sess.ip_in:
                    for packet in sess.ip_in:
                        if tun_fd is not None:
                            try:
                                write(tun_fd, packet)
                                delivered += 1
                            except OSError:
                                self.stats["tun_drops"] += 1
                    sess.ip_in.clear()
        self.stats["to_tun"] += delivered

    def _read_tun(self) -> None:
        read, fd = os.read, self.tun
        escaped, encode, header = self.session.ip_escaped, hdlc.encode_frame, session.IP_HEADER
        frames = []
        for _ in range(BATCH):
            try:
                packet = read(fd, 65536)
            except BlockingIOError:
                break
            if packet[0] >> 4 == 4:  # IPv4 only: IPCP negotiated nothing else
                frames.append(encode(header + packet, escaped))
        if frames:
            self.stats["from_tun"] += len(frames)
            self.pending += b"".join(frames)

    # ---- events ------------------------------------------------------------------------
    def _on_up(self, local: str, peer: str | None, mtu: int, user: str | None) -> None:
        self.tun = tun.open_tun(self.tun_name)
        tun.configure(self.tun_name, local, peer, mtu, self.routes)
        self.poller.register(self.tun, select.EPOLLIN)
        self._tun_reading = True
        self.up_deadline = None
        log.info("link up: user %s, local %s, peer %s, tun %s, mtu %d; UNENCRYPTED: no MPPE, "
                 "PPTP traffic is readable on the path", user, local, peer, self.tun_name, mtu)
        self._status({"state": "up", "local": local, "peer": peer, "tun": self.tun_name, "mtu": mtu,
                      "user": user, "encrypted": False, "pid": os.getpid()})

    def _borrow_gre_socket(self) -> None:
        """Once GRE flows (LCP is open), the GRE socket of pptpd's call process (our parent)
        or of pptp (our child) exists: deepen its queue and keep a handle to watch it."""
        if self.gre_owner is None:
            return
        try:
            self.gre_probe = greguard.borrow_gre_socket(self.gre_owner, GRE_RCVBUF)
        except OSError as error:
            log.warning("cannot reach the GRE socket of pid %d (%s): bursts may stall the tunnel",
                        self.gre_owner, error)
            return
        if self.gre_probe is None:
            log.warning("no GRE socket found in pid %d", self.gre_owner)

    def _status(self, data: dict) -> None:
        if not self.status_file:
            return
        tmp = f"{self.status_file}.tmp{os.getpid()}"
        with open(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.status_file)

    def _handle_events(self) -> None:
        for event in self.session.events:
            kind = event[0]
            if kind == "lcp-up":
                log.info("LCP open (authentication: %s)", event[1] or "none")
                self._borrow_gre_socket()
            elif kind == "auth-ok":
                log.info("authenticated %s", event[1])
            elif kind == "auth-failed":
                log.warning("authentication failed for %r: %s", event[1], event[2])
            elif kind == "up":
                try:
                    self._on_up(*event[1:])
                except OSError as error:  # e.g. the TUN name is taken in this namespace
                    log.error("cannot set up TUN %s: %s", self.tun_name, error)
                    if self.tun is not None:
                        os.close(self.tun)
                        self.tun = None
                    self.session.close(time.monotonic(), f"cannot set up TUN {self.tun_name}: {error}",
                                       session.EXIT_CONFIG)
        self.session.events.clear()

    # ---- loop --------------------------------------------------------------------------
    def run(self) -> int:
        sess = self.session
        sess.start(time.monotonic())
        closing_at: float | None = None
        idle = True  # the last poll timed out: time for the rare checks
        while True:
            now = time.monotonic()
            if self.hangup:
                if sess.result is None:
                    sess.result = (session.EXIT_LINK, "the pty closed (the PPTP call ended)")
                    if self.child is not None:
                        try:
                            status = self.child.wait(1)
                            sess.result = (session.EXIT_LINK, f"pptp exited with status {status} "
                                           "(server unreachable, call refused or closed)")
                        except subprocess.TimeoutExpired:
                            pass
                break
            if self.stop_requested and closing_at is None:
                closing_at = now
                sess.close(now, self.stop_reason)
            if self.stop_requested > 1 or (closing_at is not None and now - closing_at > 3):
                break
            if self.up_deadline is not None and now >= self.up_deadline and sess.phase != session.RUNNING:
                self.up_deadline = None
                sess.close(now, "the link did not come up in time", session.EXIT_NEGOTIATION)
            if idle and self.child is not None and self.child.poll() is not None and sess.phase != session.DEAD:
                if sess.result is None:
                    sess.result = (session.EXIT_LINK,
                                   f"pptp exited with status {self.child.returncode} "
                                   "(server unreachable, call refused or closed)")
                break
            deadline = sess.deadline()
            if deadline is not None and now >= deadline:
                sess.tick(now)
            wire = sess.take_wire()
            if wire:
                self.pending += wire
            if sess.events:
                self._handle_events()
            self._flush()
            if sess.phase == session.DEAD:
                self._drain_output(0.5)
                break
            deadline = sess.deadline()
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
            if self.up_deadline is not None:
                timeout = max(0.0, min(timeout, self.up_deadline - now))
            try:
                ready = self.poller.poll(timeout)
            except InterruptedError:
                continue
            idle = not ready or self.hangup
            now = time.monotonic()
            for fd, mask in ready:
                if fd == self.tun:
                    self._read_tun()
                elif fd == self.pty:
                    if mask & select.EPOLLIN:
                        self._read_pty(now)
                    elif mask & (select.EPOLLHUP | select.EPOLLERR):
                        self.hangup = True
                elif fd == self._watched:
                    log.info("%s ended: closing the link", self._watched_what)
                    self.poller.unregister(fd)
                    self.stop_reason = f"{self._watched_what} stopped"
                    self.stop_requested += 1
                elif fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
        return self._finish()

    def _drain_output(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.pending and not self.hangup and time.monotonic() < end:
            self._flush()
            if self.pending:
                time.sleep(0.01)

    def _finish(self) -> int:
        code, reason = self.session.result or (session.EXIT_LINK, "ended")
        (log.info if code == 0 else log.warning)(
            "link down (exit %d): %s; frames to tun %d, from tun %d, tun drops %d, bad FCS %d",
            code, reason, self.stats["to_tun"], self.stats["from_tun"], self.stats["tun_drops"],
            self.decoder.bad_fcs)
        self._status({"state": "down", "code": code, "reason": reason})
        if self.tun is not None:
            os.close(self.tun)  # the (non-persistent) TUN disappears with its fd
        return code
