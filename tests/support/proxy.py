"""A small HTTP proxy on 127.0.0.1 in front of a real server, that can lose answers.

``DroppingProxy(upstream, drop={"/api/2.0/mlflow/runs/create": 1})`` forwards every request; for the first
N requests to a listed path it forwards the request (the server acts on it), then closes the client's
connection without answering: the client sees its request fail although it reached the server.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class DroppingProxy:
    def __init__(self, upstream: str, drop: dict[str, int]) -> None:
        self.upstream = upstream.rstrip("/")
        self.drop = dict(drop)
        self.seen: Counter[str] = Counter()  # path -> requests forwarded
        self.dropped: Counter[str] = Counter()  # path -> answers lost on purpose
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30
                )
                path = self.path.split("?", 1)[0]
                with proxy._lock:
                    proxy.seen[path] += 1
                    lose = proxy.dropped[path] < proxy.drop.get(path, 0)
                    if lose:
                        proxy.dropped[path] += 1
                if lose:  # the server did it; the client never hears
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
