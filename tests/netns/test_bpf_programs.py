"""The node's BPF programs, verdict by verdict, in the kernel (root: BPF_PROG_TEST_RUN runs
each loaded program on a crafted frame and hands back the verdict, the frame and the
__sk_buff after the program; no device or namespace is involved)."""
from __future__ import annotations

import os
import struct

import pytest

from dataplane.bpf import detect, loader, programs, spec, syscall
from dataplane.bpf.asm import mac_bytes

pytestmark = pytest.mark.root

K1, K1_PEER = "02:00:00:00:01:01", "02:00:00:00:01:02"
K2, K2_PEER = "02:00:00:00:02:01", "02:00:00:00:02:02"
O1, O1_PEER = "02:00:00:00:03:01", "02:00:00:00:03:02"
BROADCAST, MULTICAST = "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:05"
SKB_SIZE = 192  # struct __sk_buff, rounded up
TC_ACT_REDIRECT = 7


@pytest.fixture(scope="module", autouse=True)
def bpf_capable():
    capability = detect.available()
    if not capability.ok:
        pytest.skip(f"no BPF guard on this machine: {capability.reason}")


def frame(dst: str, src: str, payload: bytes = bytes(50)) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + b"\x08\x00" + payload


def node_guard() -> spec.NodeGuard:
    ends = (spec.SliceEnd(K1, K1_PEER, 0x10), spec.SliceEnd(K2, K2_PEER, 0x11),
            spec.SliceEnd(O1, O1_PEER, 0x12, own_ifname="oo1-b"))
    return spec.NodeGuard("n", (spec.DeviceGuard("to-b", ends),))


@pytest.fixture(scope="module")
def loaded():
    """role -> descriptor of the loaded program (own link device ifindex 9, substrate 5)."""
    fds = {p.role: loader.load(p) for p in spec.programs(node_guard(), {"to-b": 5, "oo1-b": 9}.get)}
    yield fds
    for fd in fds.values():
        os.close(fd)


def run(fd: int, data: bytes, priority: int = 0) -> tuple[int, bytes, int]:
    ctx = bytearray(SKB_SIZE)
    struct.pack_into("<I", ctx, programs.SKB_PRIORITY, priority)
    verdict, out, ctx_out = syscall.prog_test_run(fd, data, bytes(ctx), SKB_SIZE)
    return verdict, out, struct.unpack_from("<I", ctx_out, programs.SKB_PRIORITY)[0]


def test_egress_guard_admits_planned_pairs_into_their_class(loaded):
    for mac, peer, minor in ((K1, K1_PEER, 0x10), (K2, K2_PEER, 0x11), (O1, O1_PEER, 0x12)):
        verdict, _, priority = run(loaded["e"], frame(peer, mac), priority=6)  # a socket's priority is overwritten
        assert (verdict, priority) == (programs.TC_ACT_OK, 0x10000 | minor)


@pytest.mark.parametrize("dst,src", [
    (BROADCAST, K1), (MULTICAST, K1),            # a slice's broadcast and multicast
    (K2_PEER, K1), (K1_PEER, K2),                # cross-slice: another slice's far end
    (K1, K1_PEER),                               # the wrong direction
    (K1_PEER, "02:00:00:00:09:09"),              # an unknown source
])
def test_egress_guard_drops_everything_else(loaded, dst, src):
    assert run(loaded["e"], frame(dst, src))[0] == programs.TC_ACT_SHOT


def test_ingress_guard_passes_kernel_pairs_steers_own_pairs_drops_the_rest(loaded):
    assert run(loaded["i"], frame(K1, K1_PEER))[0] == programs.TC_ACT_OK
    assert run(loaded["i"], frame(O1, O1_PEER))[0] == TC_ACT_REDIRECT
    for dst, src in ((BROADCAST, K1_PEER), (MULTICAST, O1_PEER), (K2, K1_PEER), (O1, K1_PEER)):
        assert run(loaded["i"], frame(dst, src))[0] == programs.TC_ACT_SHOT


@pytest.mark.parametrize("dst,src", [
    (O1_PEER, O1),                               # already the link's pair: left as it is
    (O1_PEER, "02:00:00:00:03:09"),              # a changed MAC (differs in the last bytes only)
    (BROADCAST, O1), (MULTICAST, "02:de:ad:be:ef:00"),
    (K1_PEER, K1), (K2, K2_PEER),                # posing as other slices
])
def test_own_link_rewrites_whatever_the_slice_sent_to_its_own_pair(loaded, dst, src):
    payload = b"\x45" + bytes(49)
    verdict, out, priority = run(loaded["o"], frame(dst, src, payload))
    assert verdict == TC_ACT_REDIRECT
    assert out[:12] == mac_bytes(O1_PEER) + mac_bytes(O1)
    assert out[12:] == b"\x08\x00" + payload
    assert priority == 0x10012


def test_maps_read_back_as_written(loaded):
    info = syscall.prog_info(loaded["e"])
    maps = loader.read_maps(info["id"])
    guard = node_guard()
    assert maps == {"vispd_pairs": spec.egress_entries(guard, guard.devices[0])}
    assert info["name"] == [p for p in spec.programs(guard, {"to-b": 5, "oo1-b": 9}.get) if p.role == "e"][0].name
