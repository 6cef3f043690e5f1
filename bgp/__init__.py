"""BGP egress (ExaBGP sessions, route installation): see the BGP egress issue."""
