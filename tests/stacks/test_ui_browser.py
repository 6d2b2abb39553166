"""``python run.py ui`` in a real browser: after the main job (data, training,
deployment) has run on a tiny generated set as a user runs it, headless Chromium
(scripts/chromium.sh installs it; the driver set-up is the dashboard test's) opens the
models page and sees the production version, the model card with its per-class table
and PR curve, "try it" with an uploaded image drawn with its boxes, the false
positive / negative gallery with file names, and the labeling, monitoring and devices
pages. Screenshots are kept in test-artifacts/ui-*.png."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.factories import detection_set
from tests.moto_server import free_port
from tests.stacks.browser import ARTIFACTS, WAIT_S
from tests.stacks.helpers import run_cli, stop_group

MODEL = "ui-squares-detector"
SIGNING_SEED = "3c" * 32


@pytest.fixture(scope="module")
def main_job(zenml_stack: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``python run.py --config squares.yaml --json`` on 36 generated images: the
    config path, the images' folder and the JSON summary."""
    tmp = tmp_path_factory.mktemp("ui")
    data = detection_set(tmp / "squares", n=36, size=128, seed=3)
    config = {
        "name": "ui-squares",
        "model_name": MODEL,
        "data": {"source": str(data), "format": "yolo"},
        "tune": {"trials": 0},
        "train": {"epochs": 4, "imgsz": 128, "batch": 8},
        "export": {"int8": False},
        "deploy": {
            "channel": str(tmp / "channel"),
            "gate": {"min_map50": 0.0},
            "staging": {"latency_images": 5, "max_latency_p95_ms": 5000},
            "self_test_images": 2,
        },
    }
    path = tmp / "squares.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = run_cli(["--config", str(path), "--json"], env={"VISIONLOOP_SIGNING_KEY": SIGNING_SEED})
    assert summary["deployment"]["production_version"], summary["deployment"]
    # one monitoring run: no device has logged anything, so its verdict is "too little data"
    monitor = run_cli(
        ["--config", str(path), "monitor", "--json"], env={"VISIONLOOP_SIGNING_KEY": SIGNING_SEED}
    )
    assert monitor["enough_data"] is False, monitor
    return {"config": path, "data": data, "summary": summary, "monitor": monitor, "tmp": tmp}


@pytest.fixture(scope="module")
def ui_url(main_job: dict[str, Any]) -> Iterator[str]:
    """``run.py --config squares.yaml ui`` on a free loopback port, stopped at the end."""
    output = main_job["tmp"] / "ui.log"
    log = open(output, "w")  # noqa: SIM115 - closed at teardown
    argv = [sys.executable, str(REPO_ROOT / "run.py"), "--config", str(main_job["config"]), "ui"]
    proc = subprocess.Popen(
        [*argv, "--port", str(free_port())],
        cwd=REPO_ROOT,
        env={**os.environ, "VISIONLOOP_SIGNING_KEY": SIGNING_SEED},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"Status page\s+(http://127\.0\.0\.1:\d+)", output.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"run.py ui did not come up:\n{output.read_text()[-4000:]}")
            time.sleep(0.3)
        yield match.group(1)
    finally:
        stop_group(proc)
        log.close()
        console = output.read_text()
        # the console stays readable: the URL last, the access log in its file
        assert "HTTP/1.1" not in console, console[-2000:]
        assert console.strip().splitlines()[-1].startswith("Status page  http://127.0.0.1:"), console[-2000:]


def screenshot(driver: Any, name: str, full: bool = False) -> Path:
    """A screenshot in test-artifacts/ui-NAME.png; ``full``: the window stretched to
    the page's height first."""
    ARTIFACTS.mkdir(exist_ok=True)
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(max(int(height) + 40, 1000), 4000))
    path = ARTIFACTS / f"ui-{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def loaded_images(driver: Any, css: str) -> int:
    """How many images matching ``css`` have finished loading with pixels."""
    return int(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".filter(i => i.complete && i.naturalWidth > 0).length",
            css,
        )
    )


def test_status_page_models_card_try_it_and_gallery(
    ui_url: str, browser: Any, main_job: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    version = str(main_job["summary"]["deployment"]["production_version"])
    try:
        # models: the production version, its stage history and the channel's pointers
        browser.get(ui_url + "/")
        table = wait.until(ec.presence_of_element_located((By.ID, "versions")))
        row = table.find_element(By.XPATH, f".//tr[td[1][normalize-space(.)='version {version}']]")
        assert "production" in row.find_elements(By.TAG_NAME, "td")[1].text
        assert "by " in row.text  # who moved it
        pointers = browser.find_element(By.ID, "pointers").text
        assert f"production → version {version}" in pointers, pointers
        assert "verified with the signing key" in browser.find_element(By.TAG_NAME, "main").text
        screenshot(browser, "models")

        # the model card: data set version, metrics per class, the PR curve, the report
        row.find_element(By.LINK_TEXT, f"version {version}").click()
        per_class = wait.until(ec.presence_of_element_located((By.ID, "per-class")))
        headers = [th.text for th in per_class.find_elements(By.TAG_NAME, "th")]
        assert headers == ["class", "precision", "recall", "mAP50", "mAP50-95"]
        cells = per_class.find_element(By.XPATH, ".//tr[td[1][normalize-space(.)='square']]").text.split()
        assert len(cells) == 5 and all(re.fullmatch(r"\d\.\d{3}", c) for c in cells[1:]), cells
        dataset_id = main_job["summary"]["data"]["dataset_version_id"]
        facts = browser.find_element(By.ID, "facts").text
        assert dataset_id in facts and "production" in facts.split("stage history")[1], facts
        wait.until(lambda d: loaded_images(d, "#pr-curve") == 1)
        frame = browser.find_element(By.CSS_SELECTOR, "iframe.report")
        # the report at the window's full height (100vh), not in a 330 px box
        assert frame.size["height"] >= browser.execute_script("return window.innerHeight") - 2
        screenshot(browser, "card")
        browser.switch_to.frame(frame)
        wait.until(lambda d: "Precision-recall" in d.find_element(By.TAG_NAME, "body").text)
        browser.switch_to.default_content()
        browser.execute_script("arguments[0].scrollIntoView()", frame)
        screenshot(browser, "card-report")

        # try it: an upload through the production version, drawn with its boxes
        browser.get(ui_url + "/try")
        image = Path(main_job["data"]) / "img_003.jpg"
        field = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        field.send_keys(str(image))
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait.until(lambda d: loaded_images(d, "img#result") == 1)
        detections = browser.find_elements(By.CSS_SELECTOR, "#detections tbody tr")
        assert detections, browser.find_element(By.TAG_NAME, "main").text
        assert "square" in detections[0].text
        assert "img_003.jpg" in browser.find_element(By.TAG_NAME, "h2").text
        screenshot(browser, "try-it", full=True)

        # the gallery: the test split's errors at the serving threshold, with file names
        browser.get(f"{ui_url}/versions/{version}/gallery")
        summary = wait.until(ec.presence_of_element_located((By.ID, "gallery-summary"))).text
        assert "serving threshold conf 0.25" in summary, summary
        figures = browser.find_elements(By.CSS_SELECTOR, "#gallery figure")
        assert figures, summary  # four epochs on 25 images leave errors to show
        wait.until(lambda d: loaded_images(d, "#gallery img") == len(figures))
        names = [f.find_element(By.CLASS_NAME, "filename").text for f in figures]
        assert all(re.fullmatch(r"img_\d{3}\.jpg", n) for n in names), names
        screenshot(browser, "gallery", full=True)
    except Exception:
        screenshot(browser, "failure")
        raise


def test_status_page_labeling_monitoring_and_devices(
    ui_url: str, browser: Any, main_job: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{ui_url}/monitoring")
    row = browser.find_element(By.CSS_SELECTOR, "#decisions tbody tr")
    version = main_job["summary"]["deployment"]["production_version"]
    assert f"{MODEL}:{version}" in row.text and "too little data" in row.text, row.text
    assert "0 images in the window" in row.text  # why, in the decision's words
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline span")) == 1
    screenshot(browser, "monitoring")

    # "try it" with a file that is not an image: the page says so, nothing breaks
    not_image = main_job["tmp"] / "notes.txt"
    not_image.write_text("not an image\n")
    browser.get(f"{ui_url}/try")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(not_image))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    error = (
        WebDriverWait(browser, WAIT_S)
        .until(ec.presence_of_element_located((By.CSS_SELECTOR, "main .error")))
        .text
    )
    assert "notes.txt could not be read as an image" in error, error

    pages = {"labeling": "No labeling round yet.", "devices": "heartbeats appear here once devices report"}
    for name, expected in pages.items():
        browser.get(f"{ui_url}/{name}")
        text = browser.find_element(By.TAG_NAME, "main").text
        assert expected in text, text
        active = browser.find_element(By.CSS_SELECTOR, "nav a.active").text
        assert active.lower() == name, active
        screenshot(browser, name)
