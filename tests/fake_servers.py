"""Misbehaving HTTP servers on 127.0.0.1 for the fault tests.

pytest-httpserver answers like a well-behaved server; these answers write the raw response themselves, so they can
trickle it a byte at a time, inflate it (a gzip bomb), or change their mind between requests. Each answer is a
function of the request handler; `FakeApi.on` routes a path prefix to a sequence of them.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Answer = Callable[[BaseHTTPRequestHandler], None]


class FakeApi:
    """A threading HTTP server; the first request under a prefix gets its first answer, and so on, the last for good."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api.requests.append(self.path)
                self.close_connection = True
                try:
                    api.answer_for(self.path)(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, which is what most of these answers test

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # close() waits for the serving loop's next poll: 0.05 s, not the default half second, each test
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, prefix: str, *answers: Answer) -> None:
        self.routes[prefix] = list(answers)

    def answer_for(self, path: str) -> Answer:
        prefix = max((p for p in self.routes if path.startswith(p)), key=len, default=None)
        if prefix is None:
            return json_answer({"error": {"message": f"nothing at {path}"}}, status=404)
        queue = self.routes[prefix]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _head(handler: BaseHTTPRequestHandler, status: int, length: int, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.send_header("Connection", "close")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()


def json_answer(body: Any, status: int = 200) -> Answer:
    """`body` as JSON, or as given when it is already bytes or text (for answers no encoder would write)."""
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, status, len(data))
        handler.wfile.write(data)

    return answer


def trickle(every: float, for_seconds: float, headers_too: bool = False) -> Answer:
    """One byte every `every` seconds for `for_seconds` (each read succeeds, the answer never completes); with
    `headers_too` even the status line comes a byte at a time."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        if not headers_too:
            handler.wfile.write(head)
            head = b""
        ends = time.monotonic() + for_seconds
        while time.monotonic() < ends:
            handler.wfile.write(head[:1] or b" ")
            head = head[1:]
            time.sleep(every)

    return answer


@functools.cache
def _bomb(decoded_mb: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
    block = b" " * 1_000_000  # whitespace: valid JSON padding, so only a size cap stops a parser reading it all
    return b"".join(packer.compress(block) for _ in range(decoded_mb)) + packer.flush()


def gzip_bomb(decoded_mb: int) -> Answer:
    """A small gzip body that inflates to `decoded_mb` MB."""
    data = _bomb(decoded_mb)

    def answer(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, 200, len(data), Content_Encoding="gzip")
        handler.wfile.write(data)

    return answer
