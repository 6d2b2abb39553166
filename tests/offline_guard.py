"""Run a Python script with every attempt to reach the network refused and recorded.

``python tests/offline_guard.py LOG script.py args...`` installs an audit hook that
raises on any socket connect or DNS lookup to a host outside loopback, appends each
attempt to LOG, and then runs the script as ``__main__``. A test that asserts LOG is
empty proves the run made no attempt to go online (not merely that it succeeded).
"""

from __future__ import annotations

import ipaddress
import runpy
import sys
from typing import Any

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host)
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(log_path: str) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        host = None
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and address:
                host = address[0]
            else:
                return  # AF_UNIX
        elif event == "socket.getaddrinfo":
            host = args[0]
        else:
            return
        if not _is_loopback(host):
            with open(log_path, "a") as fh:
                fh.write(f"{event} {host!r}\n")
            raise OSError(f"offline guard: network access to {host!r} refused")

    sys.addaudithook(hook)


if __name__ == "__main__":
    log, script, *rest = sys.argv[1:]
    install(log)
    sys.argv = [script, *rest]
    sys.path.insert(0, str(__import__("pathlib").Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")
