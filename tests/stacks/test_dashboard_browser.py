"""``python run.py dashboard`` in a real browser: after a data pipeline run, headless
Chromium (Debian's chromium + chromium-driver, driven by selenium; scripts/chromium.sh
installs them) opens the local ZenML dashboard, finds the run in the run list, opens
it, clicks the data set artifact and sees its visualization (the sample grid image);
the MLflow UI answers too. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.factories import detection_set
from tests.moto_server import free_port
from tests.stacks.browser import ARTIFACTS, WAIT_S
from tests.stacks.helpers import stop_group


@pytest.fixture(scope="module")
def data_run(zenml_stack: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's latest completed data pipeline run on the local stack (the
    integration tests leave some), else a new one on a small generated set."""
    from zenml.client import Client

    from pipelines.launch import run_data_pipeline
    from visionloop import constants
    from visionloop.config import VisionloopConfig

    client = Client()
    stack_id = client.get_stack(zenml_stack).id
    runs = client.list_pipeline_runs(
        pipeline=constants.DATA_PIPELINE, stack_id=stack_id, status="completed", size=1
    ).items
    if runs:
        return runs[0]
    data = detection_set(tmp_path_factory.mktemp("browser") / "squares", n=12, size=64, seed=21)
    config = VisionloopConfig.model_validate(
        {"name": "browser", "data": {"source": str(data), "format": "yolo"}}
    )
    return run_data_pipeline(config.data).run


@pytest.fixture(scope="module")
def dashboard(data_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``run.py dashboard`` on free loopback ports, stopped (with its MLflow UI) at the end."""
    port, mlflow_port = free_port(), free_port()
    output = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    log = open(output, "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "run.py"),
            "dashboard",
            "--port",
            str(port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # one process group with the MLflow UI it starts
    )
    try:
        deadline = time.monotonic() + 180
        while "Both answer" not in output.read_text():
            failed = re.search(r"^error:", output.read_text(), flags=re.M)
            if proc.poll() is not None or time.monotonic() > deadline or failed:
                raise AssertionError(f"run.py dashboard did not come up:\n{output.read_text()[-4000:]}")
            time.sleep(0.5)
        text = output.read_text()
        zen = re.search(r"ZenML dashboard\s+(http://\S+)", text)
        mlflow = re.search(r"MLflow UI\s+(http://\S+)", text)
        assert zen and mlflow, text
        yield {"zenml": zen.group(1), "mlflow": mlflow.group(1), "log": str(output)}
    finally:
        stop_group(proc)
        log.close()


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_dashboard_shows_the_run_and_an_artifact_visualization(
    dashboard: dict[str, str], browser: Any, data_run: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    try:
        browser.get(f"{dashboard['zenml']}/projects/default/runs")
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{data_run.name}')]")))
        screenshot(browser, "runs")

        browser.get(f"{dashboard['zenml']}/projects/default/runs/{data_run.id}")
        node = wait.until(
            ec.element_to_be_clickable((By.XPATH, "//*[normalize-space(text())='image_dataset']"))
        )
        node.click()
        tab = wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, "(//*[@role='tab'][normalize-space(.)='Visualization'])[last()]")
            )
        )
        tab.click()
        # the dashboard asks before it loads a visualization
        wait.until(
            ec.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='Load Preview']"))
        ).click()
        # the data set's first visualization: the sample grid (PNG) the materializer wrote
        wait.until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('img')].some("
                "i => i.complete && i.naturalWidth > 200 && i.naturalHeight > 100)"
            )
        )
        shot = screenshot(browser, "artifact-visualization")
        assert shot.stat().st_size > 20_000
    except Exception:
        screenshot(browser, "failure")
        raise

    browser.get(dashboard["mlflow"])
    wait.until(lambda d: "Experiments" in d.find_element(By.TAG_NAME, "body").text)  # rendered, not loading
    screenshot(browser, "mlflow")
    # the console stays readable: the URLs last, the servers' access logs in their files
    console = Path(dashboard["log"]).read_text()
    assert '"GET /' not in console and "HTTP/1.1" not in console, console[-2000:]
    tail = console.strip().splitlines()[-3:]
    assert (
        tail[0].startswith("ZenML dashboard") and tail[1].startswith("MLflow UI") and "Both answer" in tail[2]
    )
