"""What a `routing: own` slice's programs do in the root tests (standard library only: it
runs as the slice's own root in its sliver, under `vispd exec`, with the system's python3).
Each prints one JSON object.

    own_agent.py routes DST=VIA ...        the slice's own routing: `ip route replace` per entry,
                                           from the sliver's loopback address (as vispd's routes)
    own_agent.py escape NODE_NS OTHER_NS   what a slice root must not do: one verdict per try
    own_agent.py hostile SPEC_JSON         pose as other slices: MACs, raw frames, floods, devices
    own_agent.py restore SPEC_JSON         undo `hostile`'s changes to the sliver
"""
from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import time

ETH_P_IP, ETH_P_ARP = 0x0800, 0x0806


def run(argv: list[str]) -> tuple[int, str]:
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def routes(entries: list[str]) -> dict:
    """Each DST via VIA with the loopback as preferred source: replies to a sliver two hops
    away then come back to an address every sliver routes (its link addresses are only
    routed by their neighbours)."""
    done, source = {}, _loopback()
    for entry in entries:
        dst, via = entry.split("=")
        code, text = run(["ip", "route", "replace", dst, "via", via, "src", source])
        done[dst] = "ok" if code == 0 else text
    return {"routes": done, "uid": os.getuid(), "caps": _caps()}


def _loopback() -> str:
    listed = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                                       text=True, check=True).stdout)
    return next(a["local"] for link in listed for a in link["addr_info"] if not a["local"].startswith("127."))


def _caps() -> str:
    with open("/proc/self/status") as handle:
        return next(line.split()[1] for line in handle if line.startswith("CapEff"))


def _try(what, action) -> str:
    try:
        result = action()
    except OSError as exc:
        return f"refused: {exc.strerror}"
    if isinstance(result, tuple):
        code, text = result
        return "done" if code == 0 else f"refused: {text}"
    return "done"


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _bpf_map() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = struct.pack("IIII", 1, 4, 4, 1) + bytes(112)  # BPF_MAP_TYPE_HASH, 4-byte key and value
    if libc.syscall(321, 0, attr, len(attr)) < 0:  # bpf(BPF_MAP_CREATE)
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def escape(node_ns: str, other_ns: str) -> dict:
    """Each thing a slice's root must not manage to do from its sliver."""
    device = next(name for _, name in socket.if_nameindex() if name.startswith("v-"))
    tries = {
        "move a device to the machine's namespace": lambda: run(["ip", "link", "set", device, "netns", "1"]),
        "move a device into the node namespace": lambda: run(["ip", "link", "set", device, "netns", node_ns]),
        "enter another slice's sliver": lambda: run(["nsenter", f"--net=/run/netns/{other_ns}", "true"]),
        "add a route in another slice's sliver": lambda: run(["ip", "-n", other_ns, "route", "add",
                                                              "10.99.0.0/16", "dev", "lo"]),
        "change a device in the node namespace": lambda: run(["ip", "-n", node_ns, "link", "set", "lo", "down"]),
        "write a kernel sysctl": lambda: _write("/proc/sys/kernel/hostname", "owned\n"),
        "write the machine's files": lambda: _write("/etc/vispd-own-test", "x"),
        "read the machine's secrets": lambda: open("/etc/shadow").read(),
        "mount a file system": lambda: run(["mount", "-t", "tmpfs", "none", "/mnt"]),
        "load a BPF map": _bpf_map,
        "signal a process of the machine": lambda: os.kill(1, 0),
    }
    own = {
        "add a route in its sliver": lambda: run(["ip", "route", "replace", "10.98.0.0/16", "dev", "lo"]),
        "write its sliver's sysctls": lambda: _write("/proc/sys/net/ipv4/conf/all/rp_filter", "0"),
        "add a device in its sliver": lambda: run(["ip", "tuntap", "add", "dev", "ownt0", "mode", "tap"]),
    }
    result = {"others": {k: _try(k, v) for k, v in tries.items()}, "own": {k: _try(k, v) for k, v in own.items()}}
    run(["ip", "link", "del", "ownt0"])
    run(["ip", "route", "del", "10.98.0.0/16"])
    return result


def udp_frame(dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, data: bytes) -> bytes:
    udp = struct.pack("!HHHH", 33434, 33434, 8 + len(data), 0) + data
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 8, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    checksum = ~(total + (total >> 16)) & 0xFFFF
    header = header[:10] + struct.pack("!H", checksum) + header[12:]
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ETH_P_IP) + header + udp


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, _mac(src_mac), socket.inet_aton(src_ip),
                       bytes(6), socket.inet_aton(target_ip))
    return b"\xff" * 6 + _mac(src_mac) + struct.pack("!H", ETH_P_ARP) + body


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frames(spec: dict) -> list[bytes]:
    """Frames posing as each victim end (its MACs and addresses), broadcast, multicast and
    ARP for the victims' addresses; every payload tagged `marker|kind|slice|node|detail`."""
    marker, out = spec["marker"], []
    for victim in spec["victims"]:
        for dst_ip in victim["targets"]:
            tag = f"{marker}|pose|{spec['slice']}|{spec['node']}|{dst_ip}\n".encode()
            out.append(udp_frame(victim["peer_mac"], victim["mac"], victim["ip"], dst_ip, tag))
        out.append(arp_request(victim["mac"], victim["ip"], victim["peer_ip"]))
    src = spec["victims"][0]
    tag = f"{marker}|broadcast|{spec['slice']}|{spec['node']}|x\n".encode()
    out.append(udp_frame("ff:ff:ff:ff:ff:ff", src["mac"], src["ip"], "255.255.255.255", tag))
    tag = f"{marker}|multicast|{spec['slice']}|{spec['node']}|x\n".encode()
    out.append(udp_frame("01:00:5e:00:00:05", src["mac"], src["ip"], "224.0.0.5", tag))
    return out


def send(ifname: str, batch: list[bytes], repeat: int) -> int:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        sent = 0
        for _ in range(repeat):
            for frame in batch:
                try:
                    sent += sock.send(frame) == len(frame)
                except OSError:  # a full queue under the flood: keep going
                    pass
        return sent


def hostile(spec: dict) -> dict:
    """Take a victim's MAC on our link, add devices (a macvlan with another victim's MAC, a
    veth pair, a TAP), then send the posing frames out of every device, and flood."""
    link, steps = spec["link"], {}
    victim_macs = [v["mac"] for v in spec["victims"]]
    steps["mac"] = run(["ip", "link", "set", link, "address", victim_macs[0]])
    steps["macvlan"] = run(["ip", "link", "add", "link", link, "name", "evil0", "address", victim_macs[-1],
                            "up", "type", "macvlan", "mode", "bridge"])
    steps["veth"] = run(["ip", "link", "add", "evil1", "up", "type", "veth", "peer", "name", "evil2"])
    steps["tap"] = run(["ip", "tuntap", "add", "dev", "evil3", "mode", "tap"])
    steps["promisc"] = run(["ip", "link", "set", link, "promisc", "on"])
    batch = frames(spec)
    sent = {device: send(device, batch, spec["repeat"]) for device in [link, "evil0", *spec["others"]]}
    deadline = time.monotonic() + spec["flood_seconds"]
    flood = frames(spec)[-2:]  # broadcast and multicast, as fast as the socket takes them
    flooded = 0
    while time.monotonic() < deadline:
        flooded += send(link, flood, 200)
    return {"steps": {k: v[0] for k, v in steps.items()}, "errors": {k: v[1] for k, v in steps.items() if v[0]},
            "sent": sent, "flooded": flooded, "per_batch": len(batch)}


def restore(spec: dict) -> dict:
    for device in ("evil0", "evil1", "evil3"):
        run(["ip", "link", "del", device])
    run(["ip", "link", "set", spec["link"], "promisc", "off"])
    return {"mac": run(["ip", "link", "set", spec["link"], "address", spec["own_mac"]])[0]}


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "routes":
        result = routes(argv[1:])
    elif command == "escape":
        result = escape(argv[1], argv[2])
    elif command == "hostile":
        result = hostile(json.loads(argv[1]))
    else:
        result = restore(json.loads(argv[1]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
