"""Run a Python module as `python3 -m MODULE ARGS...` would, under cProfile counting CPU time
(not wall time: an idle poll costs nothing), and write the statistics when it exits,
however it exits (return, SystemExit, an exception). For bench/bgpborder.py, which runs
the border router's ExaBGP and its helper this way. I/O: writes the statistics file.

    python3 bench/profiled.py OUT.prof MODULE [ARGS...]
"""
from __future__ import annotations

import cProfile
import os
import runpy
import sys
import time

# As a script, Python puts bench/ first on sys.path, where bench/bgp.py would shadow the
# `bgp` package: the repository root goes there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    out, module = sys.argv[1], sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
