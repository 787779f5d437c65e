"""Tell systemd (``Type=notify``) where ``kmipd serve`` is: ready, reloading, stopping.

systemd sets ``NOTIFY_SOCKET`` to a Unix datagram socket; each state is one datagram of
``KEY=value`` lines (sd_notify(3)). With ``Type=notify`` systemd counts kmipd as started only
once its ports are open, and holds ``systemctl reload`` until then. Without the variable
(not under systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)

ENV = "NOTIFY_SOCKET"


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``) in one datagram; whether it was sent."""
    address = os.environ.get(ENV)
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        log.warning("could not notify systemd (%s=%s): %s", ENV, address, exc)
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    # MONOTONIC_USEC: systemd 253+ matches a reload to its request by it.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping() -> bool:
    return notify("STOPPING=1")
