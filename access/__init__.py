"""Slice access: remote clients (OpenVPN, WireGuard, PPTP) and local programs (UNIX socket) reach a slice's vISP.

The runtime side (I/O): daemons, key material, management sockets; their configuration formats are the compiler's (compiler.access_types).
"""
