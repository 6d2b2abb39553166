"""The device's own page in a real headless Chromium: the last predictions drawn on their
images, and an image tried through the page's form shows up among them. Screenshots
are kept in test-artifacts/ (edge-page-*.png)."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from tests.deploy.channel_helpers import release
from tests.edge.helpers import Channel, image_bytes, make_runtime, serving
from tests.stacks.browser import ARTIFACTS, WAIT_S

TOKEN = "page-token"


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"edge-page-{name}.png"
    driver.save_screenshot(str(path))
    return path


def drawn_images(driver: Any) -> int:
    return int(
        driver.execute_script(
            "return [...document.querySelectorAll('figure img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length"
        )
    )


def test_the_device_page_shows_predictions_and_takes_an_image(
    browser: Any,
    abd_onnx: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    channel = Channel(tmp_path / "channel")
    channel.publish(release(abd_onnx, "1"), "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    upload = tmp_path / "from-the-browser.jpg"
    upload.write_bytes(image_bytes(3))
    try:
        assert runtime.agent.check_once()
        with serving(runtime, token=TOKEN) as server:
            host, port = server.server_address[:2]
            for i in range(3):
                conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
                conn.request(
                    "POST",
                    "/v1/predict",
                    body=image_bytes(i),
                    headers={"Authorization": f"Bearer {TOKEN}", "X-Image-Name": f"line2-{i:04d}.jpg"},
                )
                assert conn.getresponse().status == 200
                conn.close()
            wait = WebDriverWait(browser, WAIT_S)
            browser.get(f"http://{host}:{port}/?token={TOKEN}")
            wait.until(lambda d: drawn_images(d) == 3)
            body = browser.find_element(By.TAG_NAME, "body").text
            assert "tags version 1" in body and "line2-0002.jpg" in body and "Health and counters" in body
            shot(browser, "predictions")
            # a person tries an image: the form posts it, the page shows it first
            browser.find_element(By.ID, "image").send_keys(str(upload))
            browser.find_element(By.CSS_SELECTOR, "form button").click()
            wait.until(lambda d: drawn_images(d) == 4 and "from-the-browser.jpg" in d.page_source)
            first = browser.find_element(By.CSS_SELECTOR, "figure figcaption b").text
            assert first == "from-the-browser.jpg"
            assert shot(browser, "after-upload").stat().st_size > 20_000
    finally:
        runtime.stop()
