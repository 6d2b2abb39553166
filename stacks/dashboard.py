"""``python run.py dashboard``: ZenML's local server with its dashboard and the MLflow
UI of the active stack's tracking store, both on loopback and offline, until Ctrl-C.

The ZenML server runs in this process (ZenML's "blocking" local deployment, on the same
SQLite store the pipelines use, no login); the MLflow UI is a child process. The client
configuration is not switched to the server: pipelines keep talking to the store
directly, and the dashboard shows their runs as they happen.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DashboardUrls:
    zenml: str
    mlflow: str | None
    tracking_uri: str | None


def answers(url: str, timeout: float = 1.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_for(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(url):
            return True
        if not alive():
            return False
        time.sleep(0.25)
    return False


def skip_onboarding() -> None:
    """The local server's only user is the default one; without this its first visit
    redirects to an onboarding survey instead of the runs."""
    from zenml.client import Client

    client = Client()
    user = client.active_user
    if user.email_opted_in is None or not (user.user_metadata or {}).get("finished_onboarding_survey"):
        client.update_user(
            user.id,
            updated_email_opt_in=False,
            updated_metadata={**(user.user_metadata or {}), "finished_onboarding_survey": True},
        )


def tracking_uri() -> str | None:
    from zenml.client import Client

    tracker: Any = Client().active_stack.experiment_tracker
    return str(tracker.get_tracking_uri()) if tracker is not None else None


def start_mlflow_ui(uri: str, host: str, port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``mlflow ui`` on ``uri`` as a child process (its own process group, so Ctrl-C
    here stops it through ``stop``); its output goes to ``log`` when given."""
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///") :]), exist_ok=True)
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    argv += ["--host", host, "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    finally:
        if out is not None:
            out.close()


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop ``mlflow ui`` and what it started (its uvicorn and job workers), which share
    its process group: stopping only the parent would leave them running."""
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            if sig == signal.SIGTERM:
                time.sleep(0.5)  # let the children follow their parent out
        except subprocess.TimeoutExpired:
            continue


class _Divert(logging.Filter):
    """Hands each record to ``handler`` and keeps it from the logger's other handlers."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        self.handler.handle(record)
        return False


def serve_zenml(host: str, port: int, access_log: Path | None = None) -> None:
    """Run ZenML's local server in this process until interrupted; its HTTP access log
    (uvicorn's, a line per request: hundreds for one page) goes to ``access_log``."""
    if access_log is not None:
        # ZenML's server clears uvicorn's handlers and sends its records to the root
        # logger (the console); a filter on the logger stays, and diverts them to the file
        handler = logging.FileHandler(access_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logging.getLogger("uvicorn.access").addFilter(_Divert(handler))
    from zenml.enums import ServerProviderType
    from zenml.zen_server.deploy.deployer import LocalServerDeployer
    from zenml.zen_server.deploy.deployment import LocalServerDeploymentConfig

    # what ZenML's daemon deployment sets and its blocking one leaves out: a local,
    # already activated server (no set-up page)
    os.environ["ZENML_SERVER_AUTO_ACTIVATE"] = "True"
    os.environ["ZENML_SERVER_DEPLOYMENT_TYPE"] = "local"
    deployer = LocalServerDeployer()
    deployer.remove_server()
    config = LocalServerDeploymentConfig(
        provider=ServerProviderType.DAEMON, blocking=True, ip_address=host, port=port
    )
    deployer.deploy_server(config)
