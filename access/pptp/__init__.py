"""PPTP access for slices (legacy, unencrypted: no MPPE).

The real pptpd (server) and pptp (client) carry the control channel and GRE; since the
kernel has no PPP, this package is the PPP that runs over their ptys: async HDLC
(`hdlc`), LCP (`lcp`), CHAP with MS-CHAPv2 or MD5 (`auth`, `mschap`), IPCP (`ipcp`),
composed per link in `session` on top of the shared automaton in `fsm`; `engine` is the
process (pty, TUN, relay), `tun` the device, `config` its JSON, and `launch` the contract
the planner uses: `server_files`, `server_command`, `client_command`.

I/O lives in `engine`, `relay`, `tun` and `greguard`; the protocol modules are pure.
"""
from .launch import client_command, server_command, server_files

__all__ = ["client_command", "server_command", "server_files"]
