"""A real moto S3 server on loopback for the tests that read ``s3://`` sources.

``s3_server`` starts ``python -m moto.server`` from the running interpreter's
environment on a free port of 127.0.0.1, waits until it answers HTTP and stops it at
the end of the session. The tests talk HTTP to it through boto3; nothing is mocked
in-process. ``s3_bucket`` gives each test a fresh bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 30.0
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    port: int
    pid: int
    log_path: Path

    def __getitem__(self, key: str) -> Any:  # also usable as a mapping: server["endpoint_url"]
        return getattr(self, key)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


def _set_dummy_credentials() -> None:
    for key, value in DUMMY_AWS_ENV.items():
        os.environ.setdefault(key, value)
    no_proxy = os.environ.get("NO_PROXY", "")
    if "127.0.0.1" not in no_proxy.split(","):
        os.environ["NO_PROXY"] = ",".join(p for p in (no_proxy, "127.0.0.1", "localhost") if p)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server subprocess; yields its ``endpoint_url``."""
    _set_dummy_credentials()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkdtemp(prefix="visionloop-moto-")) / "moto_server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(f"{endpoint}/moto-api/"):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with code {proc.returncode} before answering on {endpoint}; "
                    f"its output:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto server did not answer on {endpoint} within {STARTUP_TIMEOUT_S:.0f} s; "
                    f"its output:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.1)
        yield S3Server(endpoint_url=endpoint, port=port, pid=proc.pid, log_path=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> tuple[Any, str]:
    """A fresh, uniquely named bucket on the moto server: ``(boto3 client, bucket name)``."""
    client = s3_server.client()
    name = f"raw-images-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return client, name
