"""The bounds on a topology file, in one place (pure).

Every stage after reading is at most linear in what these allow, so that any input up to
them is judged in a few seconds and a few hundred MB, and anything beyond them is refused
with one located message instead of a long run. The numbers were chosen by measuring the
worst inputs on a 2-core machine (see the README, "The topology file", and
tests/unit/test_hostile_input.py): a realistic research topology (Abilene: 4 kB; the
largest Topology Zoo network, about 750 PoPs: about 150 kB written as vispd YAML) is far
below each of them.

`model.counts` checks the counts on the plain data that `yamlsrc` produced, before the
schema sees it.
"""
from __future__ import annotations


# -- reading ----------------------------------------------------------------------------
# Ordinary topology costs `validate` about 0.9 s CPU and 56 MiB per MiB with every limit
# lifted (bench/parse.py): 4 MiB is the most that stays within 5 s and 300 MiB.
MAX_FILE_BYTES = 4 * 1024 * 1024  # larger files are refused at once, unread
READ_TIMEOUT_S = 2.0  # a pipe, FIFO or device must deliver all of its input within this

# -- YAML structure ---------------------------------------------------------------------
MAX_DEPTH = 64  # nesting of mappings and sequences (a topology needs 6), aliases included
MAX_VALUES = 120_000  # values once aliases and merge keys are expanded (scalars, lists, mappings, keys)
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES  # characters of all scalars once aliases are expanded
MAX_NUMBER_CHARS = 40  # a number written with more characters is refused (no field needs 20)

# -- error output -------------------------------------------------------------------------
MAX_SHOWN_PROBLEMS = 100  # the rest are counted, not printed
MAX_MESSAGE_CHARS = 300  # a message is shortened in the middle beyond this
EXCERPT_CHARS = 120  # the quoted source line is cut to this many characters around the caret
MAX_QUOTED_CHARS = 40  # a value quoted in a message is cut to this many characters

# -- counts (the later stages grow with them) ----------------------------------------------
# The plan grows with the slivers and, for static routing, with the square of the nodes each
# slice spans (a route from every sliver to every other): ROUTE_PAIRS bounds that sum, at
# the size of bench/plan.py's case (1,000 nodes, 2 slices).
MAX_NODES = 2048  # PlanetLab had about 1,000 sites at its peak; Topology Zoo's largest has 754 PoPs
MAX_LINKS = 8192
MAX_SLICES = 256
MAX_PROVIDERS = 256
MAX_ACCESS = 1024  # entries under `access:`
MAX_ITEMS = 1024  # in total, over the whole file: prefixes, pseudo-devices, egress, announcements, users...
MAX_SLIVERS = 16384  # sum over slices of the nodes each spans: a namespace each
MAX_VIRTUAL_LINKS = 65536  # sum over slices of the links each uses: two interfaces each
MAX_ROUTE_PAIRS = 2**21  # sum over slices of (nodes spanned)^2

# (path pattern of a list, limit on the sum of its lengths over the file, what its items
# are); '*' matches every index of a list.
COUNTED_LISTS: list[tuple[tuple, int, str]] = [
    (("nodes",), MAX_NODES, "nodes"),
    (("links",), MAX_LINKS, "links"),
    (("slices",), MAX_SLICES, "slices"),
    (("providers",), MAX_PROVIDERS, "providers"),
    (("access",), MAX_ACCESS, "access entries"),
    (("address-space",), MAX_ITEMS, "address-space prefixes"),
    (("slices", "*", "nodes"), MAX_SLIVERS, "nodes listed by slices"),
    (("slices", "*", "links"), MAX_VIRTUAL_LINKS, "links listed by slices"),
    (("slices", "*", "pseudo-devices"), MAX_ITEMS, "pseudo-devices"),
    (("slices", "*", "egress"), MAX_ITEMS, "egress providers listed by slices"),
    (("slices", "*", "announce"), MAX_ITEMS, "announcements"),
    (("slices", "*", "announce", "*", "communities"), MAX_ITEMS, "communities"),
    (("access", "*", "nodes"), MAX_SLIVERS, "nodes listed by access entries"),
    (("access", "*", "users"), MAX_ITEMS, "access users"),
]
