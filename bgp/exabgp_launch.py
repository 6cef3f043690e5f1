"""Start ExaBGP with vispd's reader hook (bgp/exabgp_hook.py): `python3 -m bgp.exabgp_launch
server CONF` takes the place of `python3 -m exabgp server CONF` (compiler/daemons/exabgp.py
`command`). I/O: it becomes the ExaBGP process.

The hook is checked first (ExaBGP exactly 5.0.15, the patched internals unchanged): if the
check fails the launcher exits with status 78 and a message on stderr, and ExaBGP is NOT
started: an ExaBGP whose reader we cannot vouch for must not feed the FIB."""
from __future__ import annotations

import sys

EXIT_REFUSED = 78   # EX_CONFIG


def _refuse(reason) -> int:
    sys.stderr.write(f"vispd: not starting ExaBGP: {reason}\n")
    return EXIT_REFUSED


def main(argv=None) -> int:
    # imported here, not at the top: an ExaBGP whose modules moved must give a refusal, not a traceback
    try:
        from bgp import exabgp_hook
    except (ImportError, AttributeError) as exc:
        return _refuse(f"vispd's hook does not fit the installed ExaBGP ({exc!r})")
    try:
        exabgp_hook.install()
    except exabgp_hook.HookRefused as exc:
        return _refuse(exc)
    from exabgp.application.main import main as exabgp_main
    sys.argv = ["exabgp"] + list(sys.argv[1:] if argv is None else argv)
    exabgp_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
