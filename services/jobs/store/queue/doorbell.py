"""SQLite's wake-up for idle workers: a doorbell of local datagram sockets.

PostgreSQL wakes waiting workers with NOTIFY (queue/notifier.py). SQLite has no such
thing, so an idle worker used to find new work only by polling, with a sleep that
grows to a second: a job submitted while it slept waited 0.16 s at the median and
0.4 s at worst for work that takes 0.65 s (bench/e2e_bench.py --gap). A SQLite
database is one file on one host, so every process using it can share a folder of
Unix datagram sockets: each waiting thread binds one, and a commit that makes work
runnable sends one byte to each. The wait wakes at once; the polling stays, unchanged,
as the fallback for anything a ring misses (a thread not yet listening, a full socket
buffer, a platform without Unix sockets).

Owns: the folder (in the temporary directory, named after the database file's path,
mode 0700), binding, ringing, waiting, and removing the sockets of processes that
died. Must not: block a commit (sends are non-blocking; every error is logged and
swallowed) or hold anything a crash could leave locked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".sock"
# After failing to bind a socket, a thread polls only and tries again after this long.
RETRY_LISTEN_SECONDS = 60.0


def doorbell_folder(database_path: str) -> Path | None:
    """The folder of sockets for the SQLite file at `database_path`; None where Unix
    datagram sockets do not exist or the database is in memory. The name is a hash of
    the file's real path, so it stays short (socket paths are limited to ~100 bytes)
    and every process that opens the same file agrees on it."""
    if not hasattr(socket, "AF_UNIX") or not database_path or database_path == ":memory:":
        return None
    real = os.path.realpath(database_path)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lightbox-doorbell-{_uid()}-{digest}"


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


class Doorbell:
    """Ring: wake every thread waiting on this database. Listen: a thread's own socket."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._local = threading.local()
        self._listeners: list[_Listener] = []
        self._lock = threading.Lock()
        self._closed = False

    def ring(self) -> int:
        """One byte to every socket in the folder; returns how many took it. Sockets
        nobody listens on any more (a process that died) are removed."""
        try:
            names = [p for p in self.folder.iterdir() if p.name.endswith(_SUFFIX)]
        except FileNotFoundError:
            return 0  # nobody has listened yet
        except OSError as exc:
            log.warning("doorbell: cannot list %s: %s", self.folder, exc)
            return 0
        rung = 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for path in names:
                try:
                    sender.sendto(b"!", str(path))
                    rung += 1
                except BlockingIOError:
                    rung += 1  # its buffer is full of rings: it will wake anyway
                except (ConnectionRefusedError, FileNotFoundError):
                    path.unlink(missing_ok=True)  # its process is gone
                except OSError as exc:
                    log.warning("doorbell: cannot ring %s: %s", path, exc)
        return rung

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds or until rung; True if rung. Rings that came
        while this thread was busy count: they are read and answered at once. Without a
        socket (the folder cannot be made), a plain sleep."""
        listener = self._listener()
        if listener is None:
            threading.Event().wait(timeout)
            return False
        return listener.wait(timeout)

    def close(self) -> None:
        """Close this store's sockets; the folder goes too once no process uses it."""
        with self._lock:
            self._closed = True
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        try:
            self.folder.rmdir()
        except OSError:
            pass  # other processes still listen, or it was never made

    def _listener(self) -> _Listener | None:
        listener: _Listener | None = getattr(self._local, "listener", None)
        if listener is not None and not listener.closed:
            return listener
        if self._closed:
            return None  # a thread still waiting on a closed store: no new socket
        failed_at: float | None = getattr(self._local, "failed_at", None)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_LISTEN_SECONDS:
            return None  # polling only for now; one warning per attempt, not per wait
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            if self.folder.stat().st_uid != _uid():
                raise PermissionError(f"{self.folder} belongs to another user")
            listener = _Listener(self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}")
        except OSError as exc:
            log.warning("doorbell: cannot listen in %s (polling only): %s", self.folder, exc)
            self._local.failed_at = time.monotonic()
            return None
        self._local.failed_at = None
        with self._lock:
            if self._closed:  # closed while this socket was being made
                listener.close()
                return None
            self._listeners.append(listener)
        self._local.listener = listener
        return listener


class _Listener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(str(path))
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)

    def wait(self, timeout: float) -> bool:
        try:
            ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):  # closed under us by close()
            return False
        if not ready:
            return False
        while True:  # every pending ring answers this one wake-up
            try:
                self._sock.recv(16)
            except (BlockingIOError, OSError):
                return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._sock.close()
        self.path.unlink(missing_ok=True)
