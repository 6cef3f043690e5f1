"""Read a topology file's text, bounded in size and in time (touches the file system only).

A regular file larger than `MAX_FILE_BYTES` is refused from its size, unread. Anything
else that can be opened (a pipe such as `<(generate)`, a FIFO, a device such as
/dev/stdin or /dev/zero) is read without blocking, and refused when it gives more than
`MAX_FILE_BYTES` or has not ended within `READ_TIMEOUT_S`. The text must be UTF-8; the
first byte that is not is reported at its line and column.
"""
from __future__ import annotations

import os
import select
import stat
import time

from .errors import Problem, SourceMark, TopologyError
from .limits import MAX_FILE_BYTES, READ_TIMEOUT_S

_CHUNK = 1 << 16


def _refuse(path: str, message: str) -> TopologyError:
    return TopologyError([Problem(SourceMark(path, 1, 1), message)])


def size_words(limit: int = MAX_FILE_BYTES) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def too_large(path: str, what: str) -> TopologyError:
    return _refuse(path, f"{what}: a topology file is at most {size_words()} ({MAX_FILE_BYTES} bytes)")


def _read_regular(path: str, fd: int) -> bytes:
    chunks, total = [], 0
    while total <= MAX_FILE_BYTES:  # the file may grow while it is read
        chunk = os.read(fd, min(_CHUNK * 16, MAX_FILE_BYTES + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise too_large(path, f"the file grew past {size_words()} while it was read")


def _read_stream(path: str, fd: int) -> bytes:
    """A pipe, FIFO or device: non-blocking reads until end of input, the size limit or the
    deadline, whichever comes first."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    chunks, total = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _refuse(path, f"cannot read: the input did not end within {READ_TIMEOUT_S:g} s "
                                "(a FIFO or device nobody finishes writing?): give a topology file")
        if not poller.poll(max(1, int(left * 1000))):
            continue
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise too_large(path, f"more than {size_words()} of input")


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise TopologyError([Problem(SourceMark(path, line, column),
                                     f"not UTF-8 text (byte 0x{data[exc.start]:02x})")]) from None


def read_topology_text(path: str) -> str:
    """The text of `path`; raise TopologyError (one problem at 1:1, or at the first byte that
    is not UTF-8) when it cannot be read, is too large or does not end in time."""
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer, and reading never hangs.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _refuse(path, f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _refuse(path, "cannot read: Is a directory")
        if stat.S_ISREG(info.st_mode):
            if info.st_size > MAX_FILE_BYTES:
                raise too_large(path, f"the file has {info.st_size} bytes")
            data = _read_regular(path, fd)
        else:
            data = _read_stream(path, fd)
    except OSError as exc:
        raise _refuse(path, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return _decode(path, data)
