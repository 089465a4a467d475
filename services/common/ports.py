"""Finding free local ports (the stack needs six consecutive ones)."""

from __future__ import annotations

import secrets
import socket


def free_port_block(count: int) -> int:
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
