"""What a delayed link needs from the kernel, rendered as text (pure: no I/O).

Two mechanisms, one per kind of kernel:

* **delay line** (no netem, this machine): in the namespace where packets *arrive* (or are
  forwarded), an iptables chain of its own — Debian's nft-backed iptables, as an
  `iptables-restore --noflush` script — drops the declared loss with `-m statistic --mode
  random` (in the kernel, before anything is queued) and hands the rest to NFQUEUE, where
  `dataplane.delayline` holds them. Direction `in` matches `-i DEV` in raw PREROUTING
  (every packet that arrives on DEV, forwarded or delivered locally); `forward` matches
  `-o DEV` in mangle FORWARD (only packets routed out of DEV). There is deliberately no
  rule for locally sent packets: held on the sender's own egress they stay charged to the
  sending socket and TCP small queues throttle it to a trickle. No `--queue-bypass`: with
  no delay process bound, the link drops (fails closed) rather than run undelayed.
* **netem** (kernels that have it): a netem qdisc as the leaf of each slice's HTB class on
  the sending node's substrate device (HTB shapes, netem delays; netem orphans the packet,
  so TCP small queues do not apply), with a pfifo inside when there is jitter so that
  packets are not reordered (tc-netem(8)). Those tc lines belong to the plan's Shaping
  (compiler.resources.shaping, re-exported here).
"""
from __future__ import annotations

from dataclasses import dataclass

DIRECTIONS = {"in": ("raw", "PREROUTING", "-i"), "forward": ("mangle", "FORWARD", "-o")}
OWNER_COMMENT = "vispd-delay"
NETEM_MIN_LIMIT = 1000  # netem's own default queue length (compiler.resources.shaping has it too)


@dataclass(frozen=True)
class DelayRules:
    """The kernel half of one delayed (device, direction) in one namespace."""

    device: str
    direction: str  # "in" | "forward"
    queues: tuple[int, ...]  # contiguous queue numbers (several: --queue-balance)
    loss: float = 0.0  # fraction dropped in the kernel before queueing

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {self.direction!r}")
        if not self.queues or list(self.queues) != list(range(self.queues[0], self.queues[0] + len(self.queues))):
            raise ValueError(f"queues must be contiguous numbers, got {self.queues!r}")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss must be a fraction in [0, 1), got {self.loss!r}")
        if not 0 < len(self.device) <= 15:
            raise ValueError(f"device name {self.device!r} is not a Linux interface name")


def chain_name(device: str, direction: str) -> str:
    """The delay chain of one (device, direction): at most 28 characters, as iptables wants."""
    return f"vdly-{direction}-{device}"


def _probability(loss: float) -> str:
    return f"{loss:.10f}".rstrip("0").rstrip(".")


def _queue_target(queues: tuple[int, ...]) -> str:
    if len(queues) == 1:
        return f"NFQUEUE --queue-num {queues[0]}"
    return f"NFQUEUE --queue-balance {queues[0]}:{queues[-1]}"


def _jump(rules: DelayRules, owner: str) -> str:
    table, hook, match = DIRECTIONS[rules.direction]
    chain = chain_name(rules.device, rules.direction)
    comment = f"{OWNER_COMMENT} {owner}".strip()
    return f'{hook} {match} {rules.device} -m comment --comment "{comment}" -j {chain}'


def render_iptables(rules: DelayRules, owner: str = "") -> str:
    """An `iptables-restore --noflush` script that installs the chain and its jump."""
    table, _, _ = DIRECTIONS[rules.direction]
    chain = chain_name(rules.device, rules.direction)
    lines = [f"*{table}", f":{chain} - [0:0]", f"-A {_jump(rules, owner)}"]
    if rules.loss > 0:
        lines.append(f"-A {chain} -m statistic --mode random --probability {_probability(rules.loss)} -j DROP")
    lines += [f"-A {chain} -j {_queue_target(rules.queues)}", "COMMIT"]
    return "\n".join(lines) + "\n"


def render_iptables_replace(rules: DelayRules) -> str:
    """An `iptables-restore --noflush` script that swaps the chain's rules (new loss, new
    queues) in one transaction, its jump untouched: no packet passes undelayed meanwhile."""
    table, _, _ = DIRECTIONS[rules.direction]
    chain = chain_name(rules.device, rules.direction)
    lines = [f"*{table}", f":{chain} - [0:0]"]  # an existing chain is flushed, in the same commit
    if rules.loss > 0:
        lines.append(f"-A {chain} -m statistic --mode random --probability {_probability(rules.loss)} -j DROP")
    lines += [f"-A {chain} -j {_queue_target(rules.queues)}", "COMMIT"]
    return "\n".join(lines) + "\n"


def render_iptables_delete(rules: DelayRules, owner: str = "") -> str:
    """An `iptables-restore --noflush` script that removes what render_iptables installed."""
    table, _, _ = DIRECTIONS[rules.direction]
    chain = chain_name(rules.device, rules.direction)
    lines = [f"*{table}", f"-D {_jump(rules, owner)}", f"-F {chain}", f"-X {chain}", "COMMIT"]
    return "\n".join(lines) + "\n"


def restore_argv(ns: str) -> list[str]:
    """The command that applies a script of this module inside namespace `ns` ("" = here)."""
    base = ["iptables-restore", "--noflush"]
    return ["ip", "netns", "exec", ns, *base] if ns else base


# The netem lines belong to the plan's Shaping (compiler.resources.shaping); these two are
# its functions under their first names. Imported when called: the delay process never
# needs them, and the compiler's resource package would cost it 60 ms and 6 MB to start.
def netem_limit(capacity_bits: int, delay_us: int, jitter_us: int = 0) -> int:
    """Twice the bandwidth-delay product in full-size packets, at least netem's default."""
    from compiler.resources import shaping

    return shaping.netem_limit(capacity_bits, delay_us, jitter_us)


def render_netem(device: str, classid: int, delay_us: int, jitter_us: int = 0,
                 loss: float = 0.0, limit: int = NETEM_MIN_LIMIT) -> list[str]:
    """tc batch lines for a netem leaf under HTB class 1:CLASSID of DEVICE (handle
    CLASSID:), with a pfifo inside when there is jitter (FIFO order kept)."""
    from compiler.resources import shaping

    return shaping.render_netem(device, classid, shaping.Netem(delay_us, jitter_us, loss, limit))
