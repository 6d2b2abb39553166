"""The HTTP trigger, for real on loopback: ``run.py --stack local-s3 trigger-server``
refuses requests without the right bearer token, refuses jobs and configurations it does
not offer, and a training run started with one authenticated POST runs to the end (the
run itself is checked in test_local_s3.py)."""

from __future__ import annotations

from typing import Any

import pytest
from zenml.client import Client

from tests.stacks.conftest import Trigger

pytestmark = pytest.mark.s3


def test_health_needs_no_token(trigger: Trigger) -> None:
    assert trigger.call("GET", "/healthz", token=None)[:2] == (200, {"ok": True})


@pytest.mark.parametrize("token", [None, "wrong-token-of-enough-length", ""], ids=["none", "wrong", "empty"])
def test_requests_without_the_token_are_refused(trigger: Trigger, token: str | None) -> None:
    status, body, headers = trigger.call("POST", "/v1/runs", {"job": "train"}, token=token)
    assert status == 401 and "token" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert trigger.call("GET", "/v1/runs/0123456789ab", token=token)[0] == 401


@pytest.mark.parametrize(
    "body, message",
    [
        ({"job": "rm -rf /"}, "job must be one of"),
        ({"job": "train", "config": "../../etc/passwd"}, "unknown config"),
        ({"job": "train", "config": "no-such-config"}, "unknown config"),
        (["train"], "JSON object"),
    ],
    ids=["job", "path", "missing", "not-an-object"],
)
def test_only_offered_jobs_and_configs_run(trigger: Trigger, body: Any, message: str) -> None:
    status, reply, _ = trigger.call("POST", "/v1/runs", body)
    assert status == 400 and message in reply["error"]


def test_unknown_run_is_not_found(trigger: Trigger) -> None:
    assert trigger.call("GET", "/v1/runs/0123456789ab")[0] == 404


def test_an_authenticated_post_runs_training_to_the_end(trigger: Trigger, main_run: dict[str, Any]) -> None:
    summary = main_run["summary"]
    assert main_run["returncode"] == 0 and main_run["job"] == "main"
    assert main_run["finished"] >= main_run["started"] >= main_run["created"]
    training = summary["training"]
    assert training["status"] == "completed" and training["model"] == "squares-s3"
    version = Client().get_model_version(training["model"], training["model_version"])
    assert version.run_metadata["dataset_version_id"] == summary["data"]["dataset_version_id"]
