"""Which delay mechanism this kernel offers: "netem", "delayline" or None. Touches the
system (the probe); `choose` and `forced` are pure.

The probe runs in a throwaway network namespace (`unshare --net`, gone when the probe
exits, nothing to clean up): it adds a netem qdisc on that namespace's `lo`, and installs
the delay line's own rules (statistic loss + NFQUEUE, through iptables-restore) and binds
an NFQUEUE queue. netem is preferred where it exists (no user-space process); the delay
line otherwise; None when neither works, and then `up` must refuse a declared delay.

`VISPD_DELAY_MECHANISM=netem|delayline|none` forces the answer without probing (tests
simulate a kernel with neither this way).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

from . import nfqueue
from .delayrules import DelayRules, render_iptables

FORCE_ENV = "VISPD_DELAY_MECHANISM"
MECHANISMS = ("netem", "delayline")


@dataclass(frozen=True)
class Capabilities:
    netem: bool
    nfqueue: bool  # iptables-restore accepted statistic + NFQUEUE and a queue could be bound
    detail: str = ""  # why a mechanism is missing, for the refusal message


def choose(caps: Capabilities) -> str | None:
    """netem if the kernel has it, else the delay line if NFQUEUE works, else None (pure)."""
    if caps.netem:
        return "netem"
    if caps.nfqueue:
        return "delayline"
    return None


def forced(environ: dict[str, str]) -> tuple[bool, str | None]:
    """(True, answer) when the environment forces the mechanism; ValueError if misspelt."""
    value = environ.get(FORCE_ENV, "").strip().lower()
    if not value:
        return False, None
    if value == "none":
        return True, None
    if value in MECHANISMS:
        return True, value
    raise ValueError(f"{FORCE_ENV}={value!r}: expected one of netem, delayline, none")


def _run(argv: list[str], stdin: str | None = None) -> str:
    """'' on success, else the command's complaint."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not installed"
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)
    if result.returncode == 0:
        return ""
    complaint = (result.stderr or result.stdout).strip().splitlines()
    return complaint[-1] if complaint else f"exit {result.returncode}"


def probe_here() -> Capabilities:
    """Try both mechanisms in the *current* namespace (call only inside a throwaway one)."""
    netem_error = _run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
    rules = DelayRules(device="lo", direction="in", queues=(0,), loss=0.01)
    queue_error = _run(["iptables-restore", "--noflush"], render_iptables(rules, "probe"))
    if not queue_error:
        try:
            nfqueue.bind(0).close()
        except OSError as error:
            queue_error = f"NFQUEUE bind: {error}"
    detail = "; ".join(f"{what}: {why}" for what, why in
                       (("netem", netem_error), ("delay line", queue_error)) if why)
    return Capabilities(netem=not netem_error, nfqueue=not queue_error, detail=detail)


def probe() -> Capabilities:
    """Probe in a fresh network namespace of a child process (needs root and unshare)."""
    if shutil.which("unshare") is None:
        return Capabilities(False, False, "unshare (util-linux) is not installed")
    result = subprocess.run(["unshare", "--net", sys.executable, "-m", "dataplane.delaycaps", "--probe-here"],
                            capture_output=True, text=True, timeout=30,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if result.returncode != 0:
        return Capabilities(False, False, f"probe failed: {result.stderr.strip()[-300:]}")
    return Capabilities(**json.loads(result.stdout.strip().splitlines()[-1]))


_probed: Capabilities | None = None


def mechanism(environ: dict[str, str] | None = None) -> str | None:
    """"netem" | "delayline" | None for this machine (probed once per process)."""
    global _probed
    is_forced, answer = forced(os.environ if environ is None else environ)
    if is_forced:
        return answer
    if _probed is None:
        _probed = probe()
    return choose(_probed)


def probed() -> Capabilities | None:
    """What the probe of this process found (None if it did not probe: forced, or not asked)."""
    return _probed


def refusal(link: str, caps: Capabilities | None = None) -> str:
    """The message `up` prints when a link declares delay, jitter or loss and the kernel
    offers no mechanism for it."""
    why = f" ({caps.detail})" if caps and caps.detail else ""
    return (f"link {link}: declares delay/jitter/loss, but this kernel has neither netem nor "
            f"NFQUEUE with iptables{why}; refusing to build it undelayed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe-here"]:
        print(json.dumps(asdict(probe_here())))
    else:
        caps = probe()
        print(json.dumps({**asdict(caps), "mechanism": choose(caps)}))
