"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that checks
each POST's signature with the account's secret, records it, and answers
from a script of status codes (then 200)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.jobs.webhooks import SIGNATURE_HEADER, verify


@dataclass
class Received:
    job_id: str
    attempt: int
    body: bytes
    signature: str
    verified: bool
    answered: int
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    # Status codes to answer, in order; 200 once they run out.
    answers: list[int] = field(default_factory=list)
    # Seconds to wait before answering (to provoke timeouts).
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signature = self.headers.get(SIGNATURE_HEADER, "")
                with receiver._lock:
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append(
                        Received(
                            job_id=self.headers.get("X-Lightbox-Job-Id", ""),
                            attempt=int(self.headers.get("X-Lightbox-Attempt", "0")),
                            body=body,
                            signature=signature,
                            verified=verify(receiver.secret, body, signature),
                            answered=answer,
                            at=time.time(),
                        )
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lightbox?src=test"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
