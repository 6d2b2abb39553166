"""A monitoring run's follow-up request against the real trigger service on loopback
(``visionloop.trigger``, as ``python run.py trigger-server`` serves it): the job of the
action is queued and run for the named configuration; every failure is recorded, never
raised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.monitoring.helpers import TOKEN, Service, finished, serve
from visionloop.monitoring.follow_up import request_follow_up


@pytest.fixture
def trigger(tmp_path: Path) -> Iterator[Service]:
    yield from serve(tmp_path)


@pytest.mark.parametrize("action, job", [("label", "label"), ("retrain", "main")])
def test_the_action_s_job_runs_for_the_named_configuration(trigger: Service, action: str, job: str) -> None:
    follow = request_follow_up(action, trigger.url + "/", TOKEN, "tags")
    assert follow.requested and follow.error is None, follow
    assert follow.job == job and follow.status_url == f"{trigger.url}/v1/runs/{follow.run_id}"
    run = finished(trigger.service, str(follow.run_id))
    assert run["status"] == "succeeded" and run["summary"] == {"job": job, "config": "tags.yaml"}
    assert trigger.started == [(job, "tags.yaml")]
    assert follow.run_id in follow.describe() and job in follow.describe()


@pytest.mark.parametrize(
    "action, token, config, message",
    [
        ("label", "wrong-token-of-enough-length", "tags", "answered 401: missing or wrong bearer token"),
        ("label", TOKEN, "no-such-config", "answered 400: unknown config 'no-such-config'"),
        ("label", None, "tags", "no trigger token"),
        ("relabel", TOKEN, "tags", "no trigger job for the action 'relabel'"),
    ],
    ids=["wrong-token", "unknown-config", "no-token", "unknown-action"],
)
def test_a_refused_request_is_recorded(
    trigger: Service, action: str, token: str | None, config: str, message: str
) -> None:
    follow = request_follow_up(action, trigger.url, token, config)
    assert not follow.requested and follow.run_id is None
    assert follow.error is not None and message in follow.error, follow.error
    assert "NOT started" in follow.describe()
    assert trigger.started == []


def test_a_trigger_service_that_is_down_is_recorded(trigger: Service) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    follow = request_follow_up("label", url, TOKEN, "tags", timeout_s=2)
    assert (
        not follow.requested
        and follow.error is not None
        and follow.error.startswith(f"could not reach {url}")
    )


def test_the_token_comes_from_the_environment_or_a_zenml_secret(zenml_stack, monkeypatch) -> None:
    from zenml.client import Client

    from steps.labeling.studio_client import api_key
    from steps.monitoring.steps import trigger_token
    from visionloop.labeling.studio import LabelStudioError

    monkeypatch.delenv("VISIONLOOP_TRIGGER_TOKEN", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert trigger_token("trigger-token-test") is None  # neither: the follow-up says why
    Client().create_secret("trigger-token-test", values={"token": "from-the-secret"})
    assert trigger_token("trigger-token-test") == "from-the-secret"
    monkeypatch.setenv("VISIONLOOP_TRIGGER_TOKEN", "from-the-environment")
    assert trigger_token("trigger-token-test") == "from-the-environment"
    Client().create_secret("studio-without-key", values={"url": "http://studio"})
    assert trigger_token("studio-without-key") == "from-the-environment"
    monkeypatch.delenv("VISIONLOOP_TRIGGER_TOKEN")
    assert trigger_token("studio-without-key") is None  # no `token` field: logged, not raised
    with pytest.raises(LabelStudioError, match="'studio-without-key' has no 'api_key' value"):
        api_key("studio-without-key")
