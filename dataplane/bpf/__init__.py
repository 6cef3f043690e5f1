"""The node's guard and slice classification as tc BPF programs, and the steering of
`routing: own` slices (issues 12 and 14).

Pure (no kernel): `asm` (an eBPF assembler), `programs` (the three programs as
instruction lists), `spec` (what a node namespace enforces: `NodeGuard`, the map
contents, the program names that are their ownership markers and digests).
Side effects: `syscall` (bpf(2) via ctypes), `loader` (maps filled, programs loaded, maps
read back), `hooks` (tcx or clsact + cls_bpf attachment), `node` (apply/observe/delete of
a `NodeGuard` in its namespace), `detect` (is BPF usable here, on which hook).

Nothing is compiled: the programs are a few dozen instructions assembled by vispd, so
install needs no clang/llvm/libbpf, and nothing is pinned under /sys/fs/bpf: each
program holds its own map, the attachment holds the program, and removing the
attachment (or its device, or its namespace) frees them all.

    from dataplane.bpf import detect, node, spec
    cap = detect.available()                  # Capability(ok, mode "tcx"|"clsact", reason)
    if cap.ok:
        node.apply(spec.NodeGuard(ns, devices), cap.mode)   # idempotent
    else:
        ...                                   # the nftables guard + u32

vispd itself goes through the planner: the engine puts the detected guard into the
Runtime (`guard` "bpf-tcx" | "bpf-clsact" | "nft"), the planner emits one
`compiler.resources.BpfGuard` per node namespace (compiler/guards.py), and its recipe
calls `node.apply` / `pending` / `delete` through the Host port (dataplane/host.py).
"""
