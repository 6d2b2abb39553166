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
    GET  /             the device's page (HTML): model, health, counters, the last
                       predictions drawn on thumbnails, a form to try an image

``POST /v1/predict`` takes the image's name from an ``X-Image-Name`` header or a
``?name=`` query (kept in the prediction log and on the page; default ``http``).

With a token (``--token`` or ``$EDGE_RUNTIME_TOKEN``) every ``/v1/`` request and the page
need ``Authorization: Bearer <token>`` (the page also takes ``/?token=<token>``, so a
browser can open it); ``/healthz`` stays open for liveness probes. The
server binds 127.0.0.1 unless told otherwise. At most ``max_connections`` connections
are served at once (a thread each; an idle keep-alive connection is closed after 30 s);
more get a 503 straight away, except ``GET /healthz``: a connection beyond the limit is
given one of ``PROBE_SLOTS`` short-lived threads that read its request line within
``PROBE_TIMEOUT_S`` and answer ``/healthz`` (anything else gets the 503), so slow
clients holding every slot cannot take the device out of its load balancer. Inference
itself is limited further by the runtime's ``max_inflight``.

``Content-Length`` must be 1 to 19 ASCII digits (one value; ``Transfer-Encoding`` is
refused with 411). An IPv6 ``host`` (``::1``, ``::``) binds an IPv6 socket.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_runtime import page
from edge_runtime.runtime import BadImageError, EdgeRuntime, ImageTooLargeError, NoModelError

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD = 16 * 2**20
BUSY_BODY = b'{"error":"too many connections; retry later"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + BUSY_BODY
)
PROBE_SLOTS = 4
PROBE_TIMEOUT_S = 2.0
CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


def health_doc(server: EdgeServer) -> tuple[int, dict[str, Any]]:
    health = server.runtime.health()
    health["http"] = {
        "max_connections": server.max_connections,
        "refused_busy": server.refused_busy,
        "probes_answered_busy": server.probes_answered,
    }
    return (200 if health["status"] == "ok" else 503), health


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

    def _authorized(self, query_token: str | None = None) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            return True
        if query_token is not None and hmac.compare_digest(query_token.encode(), token.encode()):
            return True
        self._send(401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"})
        return False

    def _query(self) -> dict[str, str]:
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        return {k: v[-1] for k, v in urllib.parse.parse_qs(query, max_num_fields=8).items()}

    def _page(self) -> None:
        token = self._query().get("token")
        if not self._authorized(token):
            return
        runtime = self.server.runtime
        loaded = runtime.current
        body = page.render(
            health_doc(self.server)[1],
            loaded.describe() if loaded is not None else None,
            runtime.recent.items(),
            token or "",
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _image_name(self) -> str:
        """The name a client gave the image (header or query), printable and short."""
        name = self.headers.get("X-Image-Name") or self._query().get("name") or "http"
        name = "".join(c for c in name if c.isprintable())[:200]
        return name or "http"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        runtime = self.server.runtime
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(*health_doc(self.server))
        elif path in ("/", "/index.html"):
            self._page()
        elif path == "/v1/model":
            if not self._authorized():
                return
            loaded = runtime.current
            if loaded is None:
                self._send(503, {"error": "no model loaded yet", "agent": runtime.agent.describe()})
            else:
                channel = runtime.agent.channel_state()
                self._send(200, {**loaded.describe(), "channel": channel})
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
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding") is not None or len(set(lengths)) != 1:
            self._send(
                411,
                {
                    "error": "send the image as the request body with one Content-Length (no Transfer-Encoding)"
                },
                close=True,
            )
            return
        if not CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            self._send(
                400, {"error": f"Content-Length {lengths[0][:20]!r} is not a number of bytes"}, close=True
            )
            return
        length = int(lengths[0].strip())
        limit = self.server.max_upload_bytes
        if length > limit:
            self._send(
                413, {"error": f"image of {length} bytes is over the limit of {limit} bytes"}, close=True
            )
            return
        data = self.rfile.read(length)
        runtime = self.server.runtime
        try:
            result = runtime.predict(data, source=self._image_name())
        except ImageTooLargeError as exc:
            self._send(413, {"error": str(exc)})
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
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), EdgeHandler)
        self.runtime = runtime
        self.token = token
        self.max_upload_bytes = max_upload_bytes
        self.max_connections = max_connections
        self.refused_busy = 0
        self.probes_answered = 0
        self._connections = threading.BoundedSemaphore(max_connections)
        self._probes = threading.BoundedSemaphore(PROBE_SLOTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``max_connections``: beyond that the
        connection gets a 503 at once instead of a thread (and its upload a buffer),
        unless it is a ``/healthz`` probe (module docstring)."""
        if not self._connections.acquire(blocking=False):
            if self._probes.acquire(blocking=False):
                threading.Thread(target=self._probe, args=(request,), daemon=True).start()
                return
            self._busy(request)
            return
        super().process_request(request, client_address)

    def _busy(self, request: Any) -> None:
        self.refused_busy += 1
        with contextlib.suppress(OSError):
            request.sendall(BUSY)
        self.shutdown_request(request)

    def _probe(self, request: Any) -> None:
        """A connection beyond the limit: answer it if it is ``GET /healthz``, else 503."""
        try:
            request.settimeout(PROBE_TIMEOUT_S)
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < 8192:
                    chunk = request.recv(1024)
                    if not chunk:
                        break
                    head += chunk
            line = head.split(b"\n", 1)[0].split()
            if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?", 1)[0] == b"/healthz":
                self.probes_answered += 1
                code, doc = health_doc(self)
                body = json.dumps(doc, separators=(",", ":")).encode()
                reason = b"OK" if code == 200 else b"Service Unavailable"
                with contextlib.suppress(OSError):
                    request.sendall(
                        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n" % (code, reason, len(body)) + body
                    )
                self.shutdown_request(request)
            else:
                self._busy(request)
        finally:
            self._probes.release()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @property
    def url(self) -> str:
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread
