"""The inference server: Python's standard-library HTTP server, one thread per request.

Endpoints (JSON answers)::

    POST /v1/predict   body: the encoded image (JPEG, PNG...), any Content-Type
                       200 {"model", "version", "variant", "latency_ms", "image_size": [w, h],
                            "detections": [{"class_id", "class_name", "score",
                                            "box": [x1, y1, x2, y2]}], "feedback"}
                       boxes are xyxy in pixels of the image as sent (EXIF orientation applied)
                       400 not an image, 401 missing/wrong token, 411 no Content-Length,
                       413 body over --max-upload-bytes, 503 no model loaded yet
    GET  /v1/model     the served version's manifest summary (classes, thresholds, ...)
    GET  /healthz      200 when a model is served, else 503; the agent's status,
                       last error, rejected versions, spool counters

With a token (``--token`` or ``$EDGE_RUNTIME_TOKEN``) every ``/v1/`` request needs
``Authorization: Bearer <token>``; ``/healthz`` stays open for liveness probes. The
server binds 127.0.0.1 unless told otherwise. At most ``max_connections`` connections
are served at once (a thread each; an idle keep-alive connection is closed after 30 s);
more get a 503 straight away. Inference itself is limited further by the runtime's
``max_inflight``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_runtime.runtime import BadImageError, EdgeRuntime, NoModelError

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD = 16 * 2**20
BUSY_BODY = b'{"error":"too many connections; retry later"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + BUSY_BODY
)


class EdgeHandler(BaseHTTPRequestHandler):
    server: EdgeServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection may hold its thread

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, doc: dict[str, Any], close: bool = False) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            return True
        self._send(401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        runtime = self.server.runtime
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            health = runtime.health()
            health["http"] = {
                "max_connections": self.server.max_connections,
                "refused_busy": self.server.refused_busy,
            }
            self._send(200 if health["status"] == "ok" else 503, health)
        elif path == "/v1/model":
            if not self._authorized():
                return
            loaded = runtime.current
            if loaded is None:
                self._send(503, {"error": "no model loaded yet", "agent": runtime.agent.describe()})
            else:
                self._send(200, loaded.describe())
        else:
            self._send(
                404, {"error": f"no such endpoint {path}; try POST /v1/predict, GET /v1/model, /healthz"}
            )

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path != "/v1/predict":
            self._send(404, {"error": f"no such endpoint {path}; POST images to /v1/predict"}, close=True)
            return
        if not self._authorized():
            self.close_connection = True
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._send(411, {"error": "send the image as the request body with a Content-Length"}, close=True)
            return
        length = int(length_header)
        limit = self.server.max_upload_bytes
        if length > limit:
            self._send(
                413, {"error": f"image of {length} bytes is over the limit of {limit} bytes"}, close=True
            )
            return
        data = self.rfile.read(length)
        runtime = self.server.runtime
        try:
            result = runtime.predict(data)
        except BadImageError as exc:
            self._send(400, {"error": str(exc)})
        except NoModelError as exc:
            self._send(503, {"error": str(exc)})
        except Exception as exc:  # the model failed on this image: answer, keep serving
            runtime.count_error()
            log.exception("prediction failed")
            self._send(500, {"error": f"prediction failed: {type(exc).__name__}: {exc}"})
        else:
            self._send(200, result)


class EdgeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        runtime: EdgeRuntime,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
        max_connections: int = 32,
    ) -> None:
        super().__init__((host, port), EdgeHandler)
        self.runtime = runtime
        self.token = token
        self.max_upload_bytes = max_upload_bytes
        self.max_connections = max_connections
        self.refused_busy = 0
        self._connections = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``max_connections``: beyond that the
        connection gets a 503 at once instead of a thread (and its upload a buffer)."""
        if not self._connections.acquire(blocking=False):
            self.refused_busy += 1
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread
