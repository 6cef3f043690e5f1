"""BGP egress at run time: ExaBGP holds the eBGP sessions to the providers, vispd's helper
process decides what is announced and what reaches the kernel FIB, and the egress manager
moves the slivers' default routes. The speaker's configuration format and ExaBGP's are the
compiler's (compiler.daemons); the FIB writer is dataplane.fib.

- policy.py       announcement safety: allocation, /24, prepends, communities (pure)
- rib.py          Adj-RIB-In per neighbour, own-AS drop, max-prefix, best path (pure)
- api.py          ExaBGP's API text protocol: parse its JSON lines, render commands (pure)
- speaker.py      the helper's state machine: events in, effects out (pure)
- report.py       log, session-event datagrams, atomic status file (files, sockets)
- helper.py       the ExaBGP API process: the I/O loop tying the above together
- egress_manager.py  (topology side) moves slivers' default routes on session events
- birdctl.py      BIRD's control socket, for the OSPF slices' egress default
"""
