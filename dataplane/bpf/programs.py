"""The node's tc BPF programs, as eBPF instruction lists (pure: no kernel, no descriptors
opened here; map descriptors and constants come in as arguments).

Three programs, all `BPF_PROG_TYPE_SCHED_CLS` returning their verdict directly (tcx, or
cls_bpf in direct-action mode: this kernel has no act_gact, and needs none). A frame's
first 12 bytes, (destination MAC, source MAC) as they are on the wire, are the key of
both maps, so a lookup needs no byte shuffling.

* `guard_egress(pairs_fd, default)` on each substrate device's egress: every frame that
  leaves the node on the device must be a planned pair of one slice, (far end, near end)
  of one virtual link; its value is the slice's HTB class, written to skb->priority (HTB
  takes skb->priority as the class before consulting any filter, so no u32 is needed and
  nothing a slice sets on its sockets can pick another slice's class). Anything else
  (broadcast, multicast, cross-slice, unknown sources) is dropped with TC_ACT_SHOT before
  it is shaped or sent. Kernel-path slices cannot forge frames (no CAP_NET_RAW or
  CAP_NET_ADMIN in their slivers), so their frames are judged where they enter the
  substrate: one program per hop does the nft guard's and u32's work.
* `guard_ingress(admit_fd)` on a device's ingress where frames arrive that no egress guard
  judged (a far end that is not a guarded node: a provider, the public underlay) or that
  must be steered (links carrying `routing: own` slices). Missing pair: TC_ACT_SHOT.
  Value 0: TC_ACT_OK, macvlan demultiplexes it (kernel path). Value N > 0: an own slice's
  frame, handed with bpf_redirect_peer() straight into the sliver end of the node's
  device N (no second backlog queue).
* `own_ingress(mac, peer_mac, substrate_ifindex, priority)` on the node end of an own
  slice's (slice, virtual link) veth: whatever the slice sent (any MACs, any addresses,
  broadcast, multicast, ARP, its own protocols), the node rewrites the Ethernet addresses
  to the virtual link's own pair (source = this end, destination = the far end) unless
  they are already those, sets the slice's class and redirects it to the substrate
  device's egress. A frame's slice is
  decided by the device it entered, never by what it claims; the far node delivers it
  to the far end of the same virtual link only.

* `source_guard(sources_fd)` on the ingress of a border's link to a slice (`s-SLICE`, BCP
  38): only IPv4 packets whose source address lies in one of the slice's prefixes enter
  (a longest-prefix-match lookup of the source); anything else, ARP and other protocols
  included, is dropped.
* `source_classes(classes_fd)` on the egress of a border's access link to a provider
  (`x-PROVIDER`), where every frame carries the node's MAC: an IPv4 packet's HTB class is
  the one of the slice whose prefix holds its source address (the map's value, written to
  skb->priority; a /0 entry gives everything else HTB's default class). It never drops.

Map layouts (little-endian values):
  PAIRS    hash, key 12 bytes = destination MAC . source MAC, value u32 skb->priority
  ADMIT    hash, key 12 bytes = destination MAC . source MAC, value u32 ifindex (0: pass)
  SOURCES  LPM trie, key 8 bytes = u32 prefix length . IPv4 network (as on the wire), value u32 1
  CLASSES  LPM trie, the same keys, value u32 skb->priority
"""
from __future__ import annotations

from .asm import (
    FP, JEQ, JGT, JNE, R0, R1, R2, R3, R4, R5, R6, Label, add, assemble, call, exit_, jmp, jmpr, ld64,
    ld_map, ldx, le, mac_bytes, mov, mov32, movr, stx,
)

# struct __sk_buff offsets (include/uapi/linux/bpf.h)
SKB_PRIORITY, SKB_DATA, SKB_DATA_END = 32, 76, 80
# helpers
MAP_LOOKUP_ELEM, SKB_STORE_BYTES, REDIRECT, REDIRECT_PEER = 1, 9, 23, 155
# verdicts (tcx uses the same values: TCX_PASS 0, TCX_DROP 2, TCX_REDIRECT 7)
TC_ACT_OK, TC_ACT_SHOT = 0, 2

ETH_HLEN = 14
KEY, VALUE = 12, 4
LPM_KEY = 8  # struct bpf_lpm_trie_key: u32 prefix length, then the address
ETH_P_IP_LOADED = 0x0008  # the ethertype 0x0800 as a little-endian 16-bit load reads it
IPV4_SOURCE = ETH_HLEN + 12  # the IPv4 source address in the frame
IPV4_HEADER_END = ETH_HLEN + 20
VERSION = 3  # bump when a program's code changes: part of every digest


def _frame_or(label: str) -> list:
    """R6 = ctx, R2 = data, R3 = data_end; jump to `label` unless a whole Ethernet header is there."""
    return [
        movr(R6, R1),
        ldx(4, R2, R6, SKB_DATA),
        ldx(4, R3, R6, SKB_DATA_END),
        movr(R4, R2), add(R4, ETH_HLEN),
        jmpr(JGT, R4, R3, label),
    ]


def _lookup_pair(map_fd: int, miss: str) -> list:
    """R0 = the map's value for the frame's (destination, source) MAC pair; `miss` if none."""
    return [
        ldx(8, R5, R2, 0), stx(8, FP, -16, R5),   # key[0:8]  = dst MAC, src MAC[0:2]
        ldx(4, R5, R2, 8), stx(4, FP, -8, R5),    # key[8:12] = src MAC[2:6]
        ld_map(R1, map_fd),
        movr(R2, FP), add(R2, -16),
        call(MAP_LOOKUP_ELEM),
        jmp(JEQ, R0, 0, miss),
    ]


def guard_egress(pairs_fd: int) -> bytes:
    return assemble([
        *_frame_or("drop"),
        *_lookup_pair(pairs_fd, "drop"),          # not a planned pair of one slice
        ldx(4, R1, R0, 0),
        stx(4, R6, SKB_PRIORITY, R1),             # the slice's HTB class
        mov(R0, TC_ACT_OK), exit_(),
        Label("drop"), mov(R0, TC_ACT_SHOT), exit_(),
    ])


def guard_ingress(admit_fd: int) -> bytes:
    return assemble([
        *_frame_or("drop"),
        *_lookup_pair(admit_fd, "drop"),
        ldx(4, R1, R0, 0),
        jmp(JEQ, R1, 0, "pass"),                  # kernel path: macvlan demultiplexes it
        mov(R2, 0),
        call(REDIRECT_PEER),                      # own path: into the sliver end of device R1
        exit_(),
        Label("pass"), mov(R0, TC_ACT_OK), exit_(),
        Label("drop"), mov(R0, TC_ACT_SHOT), exit_(),
    ])


def own_ingress(mac: str, peer_mac: str, substrate_ifindex: int, priority: int) -> bytes:
    header = mac_bytes(peer_mac) + mac_bytes(mac)  # destination, source: as on the wire
    head, tail = le(header[0:8]), le(header[8:12])
    return assemble([
        *_frame_or("drop"),
        ld64(R4, head), ldx(8, R5, R2, 0), jmpr(JNE, R5, R4, "rewrite"),
        mov32(R4, tail), ldx(4, R5, R2, 8), jmpr(JNE, R5, R4, "rewrite"),
        Label("steer"),
        mov(R1, priority), stx(4, R6, SKB_PRIORITY, R1),
        mov(R1, substrate_ifindex), mov(R2, 0),
        call(REDIRECT),
        exit_(),
        # The slice sent other addresses (a changed MAC, broadcast, multicast, anything):
        # write the link's pair with the helper (a direct write would make the verifier
        # unclone every packet, even those that need no rewrite).
        Label("rewrite"),
        ld64(R4, head), stx(8, FP, -16, R4),
        mov32(R4, tail), stx(4, FP, -8, R4),
        movr(R1, R6), mov(R2, 0), movr(R3, FP), add(R3, -16), mov(R4, 12), mov(R5, 0),
        call(SKB_STORE_BYTES),
        jmp(JEQ, R0, 0, "steer"),
        Label("drop"), mov(R0, TC_ACT_SHOT), exit_(),
    ])


def _ipv4_source_key_or(label: str) -> list:
    """Stack key (FP-8) = /32 of the frame's IPv4 source; `label` unless it is a whole IPv4
    header (R6 = ctx afterwards)."""
    return [
        movr(R6, R1),
        ldx(4, R2, R6, SKB_DATA),
        ldx(4, R3, R6, SKB_DATA_END),
        movr(R4, R2), add(R4, IPV4_HEADER_END),
        jmpr(JGT, R4, R3, label),
        ldx(2, R5, R2, ETH_HLEN - 2), jmp(JNE, R5, ETH_P_IP_LOADED, label),
        ldx(4, R5, R2, IPV4_SOURCE), stx(4, FP, -4, R5),
        mov32(R5, 32), stx(4, FP, -8, R5),
    ]


def _lookup_source(map_fd: int, miss: str) -> list:
    return [ld_map(R1, map_fd), movr(R2, FP), add(R2, -8), call(MAP_LOOKUP_ELEM), jmp(JEQ, R0, 0, miss)]


def source_guard(sources_fd: int) -> bytes:
    return assemble([
        *_ipv4_source_key_or("drop"),
        *_lookup_source(sources_fd, "drop"),      # not from the slice's own addresses
        mov(R0, TC_ACT_OK), exit_(),
        Label("drop"), mov(R0, TC_ACT_SHOT), exit_(),
    ])


def source_classes(classes_fd: int) -> bytes:
    return assemble([
        *_ipv4_source_key_or("pass"),
        *_lookup_source(classes_fd, "pass"),
        ldx(4, R1, R0, 0),
        stx(4, R6, SKB_PRIORITY, R1),             # the class of the slice the source belongs to
        Label("pass"), mov(R0, TC_ACT_OK), exit_(),
    ])
