"""Access to /dev/net/tun for slice programs.

A slice program attaches to its own persistent TUN/TAP device (created by vispd with the
slice's uid/gid as owner; the kernel refuses any other uid without CAP_NET_ADMIN). It can
only do so if it may open /dev/net/tun, which distributions ship as 0666 but minimal
systems and containers sometimes leave 0600. When a topology has pseudo-devices, vispd
sets the distribution default and records the original mode machine-wide (in /run/vispd);
`restore_access` puts it back once no vispd namespace is left on the machine, whichever
state directory the topologies were built from.

I/O: the mode of /dev/net/tun and a record file under /run/vispd.
"""
from __future__ import annotations

import os
import stat

from . import netns

TUN_DEVICE = "/dev/net/tun"
RECORD = "/run/vispd/tun-device-mode"


def grant_access(record_path: str = RECORD) -> bool:
    """Make /dev/net/tun 0666 if it is not; remember the old mode. True when changed."""
    mode = stat.S_IMODE(os.stat(TUN_DEVICE).st_mode)
    if mode & 0o666 == 0o666:
        return False
    if not os.path.exists(record_path):
        os.makedirs(os.path.dirname(record_path), exist_ok=True)
        with open(record_path, "w") as handle:
            handle.write(f"{mode:o}\n")
    os.chmod(TUN_DEVICE, mode | 0o666)
    return True


def restore_access(record_path: str = RECORD) -> None:
    """Put back the original mode, unless some vispd namespace (any topology) remains."""
    if netns.list_names("vispd."):
        return
    try:
        with open(record_path) as handle:
            mode = int(handle.read().strip(), 8)
    except FileNotFoundError:
        return
    os.chmod(TUN_DEVICE, mode)
    os.unlink(record_path)
