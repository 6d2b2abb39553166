"""What a monitoring run sets off when it runs on its own (a schedule): it asks the
HTTP trigger service (``python run.py trigger-server``, ``visionloop.trigger``) to start
the follow-up job, and records the answer in the drift decision.

A run started from the command line without a trigger URL leaves the follow-up to the
command (``python run.py monitor`` starts the labeling round itself); a scheduled run
has no command around it, so its follow-up goes through the trigger service.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import BaseModel

# monitor.on_drift -> the trigger service's job (visionloop.trigger.JOBS)
JOB_OF_ACTION = {"label": "label", "retrain": "main"}
TOKEN_ENV = "VISIONLOOP_TRIGGER_TOKEN"


class FollowUp(BaseModel):
    """The request for the follow-up job and the trigger service's answer."""

    action: str
    job: str
    config: str
    trigger_url: str
    requested: bool = False
    run_id: str | None = None
    status_url: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.requested:
            return f"{self.job} run {self.run_id} started by {self.trigger_url} ({self.status_url})"
        return f"{self.job} NOT started: {self.error}"


def request_follow_up(
    action: str, trigger_url: str, token: str | None, config: str, timeout_s: float = 10.0
) -> FollowUp:
    """POST the job of ``action`` for ``config`` to the trigger service. Never raises:
    the drift verdict stands whatever the service answers; the error is recorded."""
    job = JOB_OF_ACTION.get(action)
    base = trigger_url.rstrip("/")
    follow = FollowUp(action=action, job=job or action, config=config, trigger_url=base)
    if job is None:
        follow.error = f"no trigger job for the action {action!r} (known: {sorted(JOB_OF_ACTION)})"
        return follow
    if not token:
        follow.error = (
            f"no trigger token: set ${TOKEN_ENV} or the ZenML secret of monitor.trigger_token_secret"
        )
        return follow
    request = urllib.request.Request(
        f"{base}/v1/runs",
        data=json.dumps({"job": job, "config": config}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as reply:
            body: dict[str, Any] = json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        follow.error = f"{base} answered {err.code}: {_error_text(err)}"
        return follow
    except (urllib.error.URLError, OSError, ValueError) as exc:
        follow.error = f"could not reach {base}: {getattr(exc, 'reason', exc)}"
        return follow
    follow.requested = True
    follow.run_id = str(body.get("id"))
    follow.status_url = f"{base}{body.get('url', '')}"
    return follow


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(err.read() or b"{}").get("error", err.reason))
    except ValueError:
        return str(err.reason)
