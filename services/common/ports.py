"""Finding free local ports for a whole stack."""

from __future__ import annotations

import secrets
import socket

# gateway P; jobs P+1; compositor P+2; Triton gRPC/HTTP/metrics P+3..P+5; worker metrics P+6
STACK_PORTS = 7


def free_port_block(count: int = STACK_PORTS) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(30000)
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
