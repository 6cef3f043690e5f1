"""Slice access: remote clients (OpenVPN, WireGuard, PPTP) and local programs (UNIX socket) reach a slice's vISP."""
