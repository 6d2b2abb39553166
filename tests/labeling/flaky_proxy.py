"""An HTTP proxy on loopback in front of the real Label Studio that starts failing on
cue: after ``allow`` requests matching ``match`` it answers those with ``status`` (or,
with ``status=0``, drops the connection without an answer), as an overloaded or
restarting server does. Everything else is forwarded unchanged."""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class FlakyProxy:
    def __init__(self, upstream: str, match: str, allow: int, status: int = 503) -> None:
        self.upstream = urlparse(upstream)
        self.pattern = re.compile(match)
        self.allow = allow
        self.status = status
        self.matched = 0
        self.failed = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.pattern.search(f"{self.command} {self.path}"):
                    with proxy._lock:
                        proxy.matched += 1
                        fail = proxy.matched > proxy.allow
                        proxy.failed += fail
                    if fail:
                        if proxy.status == 0:
                            self.close_connection = True
                            self.connection.close()
                            return
                        payload = b'{"detail": "service unavailable (injected by the test proxy)"}'
                        self.send_response(proxy.status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
