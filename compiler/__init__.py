"""Topology to plan (pure): semantic checks, addressing, routing, the plan of keyed resources,
the configurations of the daemons vispd runs, the lab world, and the diff between two plans.
Imports only `model`; touches no kernel and starts no process."""
