"""A real Label Studio server on loopback for the tests that use ``label_studio``.

When the collected tests need it, the server is installed in its own venv
(``scripts/labelstudio.sh``, idempotent) and started in a background thread right after
collection, so its first start (database migrations, about a minute) overlaps the tests
that run before. The fixture waits until it answers. It runs with a fresh data folder,
a ready admin user with a legacy API token, and local-files serving on; the tests talk
to it only over HTTP, through the API, as the SDK does. A server that cannot be
installed or started fails the tests that need it, with the log's tail.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 900.0  # an install on a cold machine, then the first migrations
FIXTURE = "label_studio"


@dataclass
class LabelStudioServer:
    url: str
    token: str
    email: str
    data_dir: Path
    log: Path

    def set_password(self, email: str, password: str) -> None:
        """Give a user a password with Label Studio's own command line (so that person
        can sign in to the web UI, as ``session`` does)."""
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir)}
        subprocess.run(
            [str(REPO_ROOT / ".venv-labelstudio" / "bin" / "label-studio"), "reset_password",
             "--username", email, "--password", password],
            check=True, env=env, capture_output=True, timeout=300,
        )  # fmt: skip

    def session(self, email: str, password: str) -> Any:
        """An HTTP session signed in through the login form, as that person's browser is."""
        import httpx

        client = httpx.Client(base_url=self.url, follow_redirects=True, timeout=30)
        client.get("/user/login/")
        token = client.cookies.get("csrftoken", "")
        response = client.post(
            "/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.url}/user/login/"},
        )
        if client.cookies.get("sessionid") is None:
            raise RuntimeError(f"could not sign in as {email}: HTTP {response.status_code}")
        client.headers["X-CSRFToken"] = client.cookies.get("csrftoken", "")
        client.headers["Referer"] = self.url
        return client

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class _Launcher:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="visionloop-label-studio-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = LabelStudioServer(
            url=f"http://127.0.0.1:{port}",
            token=secrets.token_hex(20),
            email="tester@visionloop.test",
            data_dir=self.folder / "data",
            log=self.folder / "label-studio.log",
        )
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._start, name="label-studio", daemon=True)

    def _start(self) -> None:
        env = {
            **os.environ,
            "LABEL_STUDIO_USERNAME": self.server.email,
            "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
            "LABEL_STUDIO_USER_TOKEN": self.server.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": "/",
            # the tests' S3 API server is on loopback, which Label Studio refuses by default
            "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        }
        with open(self.server.log, "ab") as log:
            try:
                subprocess.run(
                    [str(REPO_ROOT / "scripts" / "labelstudio.sh")],
                    stdout=log,
                    stderr=log,
                    check=True,
                    env=env,
                )
            except (OSError, subprocess.CalledProcessError) as exc:
                self.error = f"installing Label Studio failed: {exc}"
                return
            self.process = subprocess.Popen(
                [
                    str(REPO_ROOT / "scripts" / "labelstudio.sh"),
                    "start",
                    str(self.port),
                    str(self.server.data_dir),
                ],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )

    def wait(self) -> LabelStudioServer:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.error:
                break
            if self.process is not None and self.process.poll() is not None:
                self.error = f"Label Studio exited with code {self.process.returncode}"
                break
            if self.process is not None and _answers(self.server):
                return self.server
            time.sleep(1.0)
        raise RuntimeError(
            f"{self.error or f'Label Studio did not answer within {STARTUP_TIMEOUT_S:.0f} s'} "
            f"(log {self.server.log}):\n{self.server.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def _answers(server: LabelStudioServer) -> bool:
    request = urllib.request.Request(
        f"{server.url}/api/current-user/whoami", headers={"Authorization": f"Token {server.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


_launcher: _Launcher | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    global _launcher
    if any(FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        _launcher = _Launcher()
        _launcher.thread.start()


def pytest_unconfigure(config: Any) -> None:
    if _launcher is not None:
        _launcher.stop()


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudioServer]:
    """The running Label Studio server (started at collection, see the module docstring)."""
    if _launcher is None:
        raise RuntimeError("the Label Studio launcher was not started at collection")
    _launcher.thread.join()
    yield _launcher.wait()
