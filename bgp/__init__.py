"""BGP egress for a slice's egress sliver: ExaBGP holds the eBGP sessions to the providers,
our helper process decides what is announced and what reaches the kernel FIB.

- config.py       the speaker's JSON config, parsed and checked (pure)
- policy.py       announcement safety: allocation, /24, prepends, communities (pure)
- rib.py          Adj-RIB-In per neighbour, own-AS drop, max-prefix, best path (pure)
- api.py          ExaBGP's API text protocol: parse its JSON lines, render commands (pure)
- speaker.py      the helper's state machine: events in, effects out (pure)
- exabgp_conf.py  ExaBGP's configuration text and start command (pure)
- fib.py          batched route installation over raw netlink (kernel)
- report.py       log, session-event datagrams, atomic status file (files, sockets)
- helper.py       the ExaBGP API process: the I/O loop tying the above together
- egress_manager.py  (topology side) moves slivers' default routes on session events
"""
