"""Everything that touches the kernel: namespaces, devices, tc, nftables, probes."""
