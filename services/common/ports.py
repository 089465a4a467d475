"""Finding free local ports for a whole stack."""

from __future__ import annotations

import secrets
import socket

# gateway P; jobs P+1; compositor P+2; Triton gRPC/HTTP/metrics P+3..P+5; worker metrics P+6
STACK_PORTS = 7


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(count: int = STACK_PORTS) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1.

    Bases are drawn outside the ephemeral range: a port found free there can be
    taken by any outgoing connection before the server that wanted it binds."""
    lo, hi = _ephemeral_range()
    if lo - 10000 > count:
        first, last = 10000, lo - count
    else:
        first, last = hi + 1, 65535 - count
    for _ in range(200):
        base = first + secrets.randbelow(last - first)
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports on 127.0.0.1")
