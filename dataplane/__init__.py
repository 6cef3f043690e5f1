"""Everything that touches the kernel: namespaces, devices, tc, nftables, probes.

The kernel side (I/O): the Host implementations, netlink, tc, nftables, processes, probes.
"""
