"""Fixtures of the stack tests: the HTTP trigger service started as a user would
(``python run.py --stack local-s3 trigger-server``) against moto's S3 server on
loopback, and one main job (data, training, deployment on the ``local-s3`` stack)
started through it over HTTP, whose results the local-s3 tests read back."""

from __future__ import annotations

import json
import os
import re
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
import yaml

from tests.conftest import REPO_ROOT
from tests.factories import detection_set
from tests.moto_server import S3Server
from tests.stacks.browser import CHROMEDRIVER, CHROMIUM, FLAGS, WAIT_S, require_browser
from tests.stacks.helpers import stop_group

MODEL = "squares-s3"
SIGNING_SEED = "6b" * 32
TOKEN = "trigger-test-token-" + "7" * 24
RUN_TIMEOUT_S = 600


@dataclass
class Trigger:
    url: str
    token: str
    proc: subprocess.Popen[str]
    output: Path

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = "default"
    ) -> tuple[int, dict[str, Any], Any]:
        """One HTTP request; returns (status, JSON body, headers)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {self.token if token == 'default' else token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read()), reply.headers
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}"), err.headers

    def wait(self, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, run, _ = self.call("GET", f"/v1/runs/{run_id}")
            assert status == 200, run
            if run["status"] in ("succeeded", "failed"):
                return run
            time.sleep(2)
        raise AssertionError(f"run {run_id} did not finish within {timeout_s:.0f} s")


@dataclass
class S3World:
    server: S3Server
    client: Any
    bucket: str
    tmp: Path
    env: dict[str, str]

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def tiny_config(folder: Path, bucket: str) -> Path:
    """A use case small enough to train in seconds: 16 images of 64 px, no tuning
    trials, one epoch, no INT8, gate thresholds at zero."""
    config = {
        "name": "squares-s3",
        "model_name": MODEL,
        "data": {"source": f"s3://{bucket}/raw-images/squares", "format": "yolo"},
        "tune": {"trials": 0},
        "train": {"epochs": 1, "imgsz": 64, "batch": 8},
        "export": {"int8": False},
        "deploy": {
            "gate": {"min_map50": 0.0, "min_map50_95": 0.0, "min_class_recall": 0.0},
            "staging": {"latency_images": 2, "max_latency_p95_ms": 5000, "max_model_mb": 50},
            "self_test_images": 1,
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "squares-s3.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def s3_world(s3_server: S3Server, zenml_stack: str, tmp_path_factory: pytest.TempPathFactory) -> S3World:
    """A bucket with 16 labelled images under raw-images/squares/."""
    tmp = tmp_path_factory.mktemp("local-s3")
    client = s3_server.client()
    bucket = f"visionloop-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    data = detection_set(tmp / "squares", n=16, size=64, seed=5)
    for path in sorted(data.iterdir()):
        client.upload_file(str(path), bucket, f"raw-images/squares/{path.name}")
    env = {
        "VISIONLOOP_S3_ENDPOINT": s3_server.endpoint_url,
        "VISIONLOOP_S3_BUCKET": bucket,
        "VISIONLOOP_SIGNING_KEY": SIGNING_SEED,
    }
    return S3World(s3_server, client, bucket, tmp, env)


@pytest.fixture(scope="session")
def trigger(s3_world: S3World) -> Iterator[Trigger]:
    """``run.py --stack local-s3 trigger-server`` on a free loopback port."""
    tmp = s3_world.tmp
    tiny_config(tmp / "configs", s3_world.bucket)
    (tmp / "token").write_text(TOKEN + "\n")
    output = tmp / "trigger-server.log"
    argv = [sys.executable, str(REPO_ROOT / "run.py"), "--stack", "local-s3", "trigger-server", "--port", "0"]
    argv += ["--token-file", str(tmp / "token"), "--config-dir", str(tmp / "configs")]
    argv += ["--default-config", "squares-s3", "--state-dir", str(tmp / "trigger-state")]
    log = open(output, "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        argv,
        cwd=tmp,
        env={**os.environ, **s3_world.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: teardown stops it and its runs
    )
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None:
            match = re.search(r"Trigger listening on (http://127\.0\.0\.1:\d+)", output.read_text())
            if match:
                url = match.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the trigger server did not start:\n{output.read_text()[-4000:]}")
            else:
                time.sleep(0.2)
        yield Trigger(url=url, token=TOKEN, proc=proc, output=output)
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture(scope="session")
def main_run(trigger: Trigger) -> dict[str, Any]:
    """The main job (data, training, deployment) on the local-s3 stack, started with
    one authenticated POST; the finished run record with its JSON summary."""
    status, body, _ = trigger.call("POST", "/v1/runs", {"job": "main", "config": "squares-s3"})
    assert status == 202, body
    run = trigger.wait(body["id"])
    assert run["status"] == "succeeded", run["log_tail"]
    return run


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='visionloop-chromium-')}"]:
        options.add_argument(flag)
    # a driver path given: selenium's driver manager (which downloads) is never used
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
