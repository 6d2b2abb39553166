"""What a person sees of a device and what it sends back: the device's page with the last
predictions drawn, image names in the prediction log, watch mode's drawn copies, a
sample (not a flood) of the images with no detection, and a mistyped model name."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from edge_runtime.runtime import sampled
from edge_runtime.storage import LocalStore
from edge_runtime.watch import FolderWatcher
from tests.conftest import REPO_ROOT
from tests.edge.helpers import Channel, image_bytes, make_runtime, public_key_file, serving
from visionloop.deploy.channel import Release


def good_part(i: int) -> bytes:
    """A defect-free part as the model sees it: a flat surface it finds nothing on; every
    one has other bytes."""
    g = 30 + 2 * i
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (g, g, min(255, g + 7))).save(buf, format="PNG")
    return buf.getvalue()


def test_a_hundred_good_parts_send_back_a_sample_not_a_hundred(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    raw = tmp_path / "raw"
    runtime = make_runtime(channel, tmp_path / "state", LocalStore(raw), empty_sample_rate=0.05)
    runtime.start(background=False)
    try:
        assert runtime.agent.check_once()
        answers = [runtime.predict(good_part(i), source=f"part{i:03d}.png") for i in range(100)]
        assert all(a["detections"] == [] for a in answers)
        sent = [a for a in answers if a["feedback"]]
        counters = runtime.health()["feedback"]
        assert counters["empty_sampled"] == len(sent) and counters["empty_skipped"] == 100 - len(sent)
        assert 1 <= len(sent) <= 12, f"{len(sent)} of 100 sent back at rate 0.05"
        assert all("sampled at 0.05" in a["feedback"]["reason"] for a in sent)
        # which ones is decided by the image's hash: the same image, the same decision
        shas = [hashlib.sha256(good_part(i)).hexdigest() for i in range(100)]
        assert [bool(a["feedback"]) for a in answers] == [sampled(s, 0.05) for s in shas]
        assert runtime.spool.describe()["items"] == len(sent)
        again = runtime.predict(good_part(0), source="part000.png")
        assert bool(again["feedback"]) == bool(answers[0]["feedback"])
    finally:
        runtime.stop()
    none = make_runtime(channel, tmp_path / "state-0", None, empty_sample_rate=0.0)
    none.start(background=False)
    try:
        assert none.agent.check_once()
        assert not any(none.predict(good_part(i))["feedback"] for i in range(20))
        assert none.health()["feedback"]["empty_skipped"] == 20
    finally:
        none.stop()


def get(server: object, path: str) -> tuple[int, str]:
    host, port = server.server_address[:2]  # type: ignore[attr-defined]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_the_device_page_shows_the_last_predictions_drawn(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state", recent=2)
    runtime.start(background=False)
    try:
        assert runtime.agent.check_once()
        with serving(runtime, token="s3cret") as server:
            host, port = server.server_address[:2]
            for i, name in enumerate(("line2-0001.jpg", "line2-0002.jpg", "line2-0003.jpg")):
                conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
                conn.request(
                    "POST",
                    "/v1/predict",
                    body=image_bytes(i),
                    headers={"Authorization": "Bearer s3cret", "X-Image-Name": name},
                )
                assert conn.getresponse().status == 200
                conn.close()
            assert get(server, "/")[0] == 401  # the page is behind the token
            status, page = get(server, "/?token=s3cret")
    finally:
        runtime.stop()
    assert status == 200 and "tags version 1" in page and "<form" in page
    # the last two, newest first, each a thumbnail with its name and hash
    assert page.index("line2-0003.jpg") < page.index("line2-0002.jpg") and "line2-0001.jpg" not in page
    images = re.findall(r"src='data:image/jpeg;base64,([^']+)'", page)
    assert len(images) == 2
    thumb = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256
    assert hashlib.sha256(image_bytes(2)).hexdigest()[:12] in page
    # the prediction log names each image and its hash
    runtime.predlog.stop()
    lines = [json.loads(x) for x in (tmp_path / "state" / "predictions.jsonl").read_text().splitlines()]
    assert [x["source"] for x in lines] == ["line2-0001.jpg", "line2-0002.jpg", "line2-0003.jpg"]
    assert lines[0]["sha256"] == hashlib.sha256(image_bytes(0)).hexdigest()


def test_watch_mode_draws_the_boxes_on_a_copy(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    inbox, out = tmp_path / "camera", tmp_path / "results"
    inbox.mkdir()
    for i in range(6):
        (inbox / f"part{i}.jpg").write_bytes(image_bytes(i))
    try:
        assert runtime.agent.check_once()
        watcher = FolderWatcher(runtime, inbox, out, draw=True)
        watcher.scan_once()  # seen
        assert watcher.scan_once() == 6  # stable: processed
    finally:
        runtime.stop()
    boxed = 0
    for i in range(6):
        result = json.loads((out / f"part{i}.json").read_text())
        drawn = Image.open(out / f"part{i}.drawn.jpg").convert("RGB")
        original = Image.open(io.BytesIO(image_bytes(i))).convert("RGB")
        assert drawn.size == original.size
        for d in result["detections"]:  # a box edge runs through its top-left corner
            x1, y1 = (min(max(0, round(v)), s - 1) for v, s in zip(d["box"][:2], drawn.size, strict=True))
            # a box colour, not JPEG noise: far from what the original has there
            moved = sum(
                abs(a - b) for a, b in zip(drawn.getpixel((x1, y1)), original.getpixel((x1, y1)), strict=True)
            )
            assert moved > 60, (d, drawn.getpixel((x1, y1)), original.getpixel((x1, y1)))
            boxed += 1
    assert boxed, "the metal-tags images give the ABD model something to detect"


def test_a_mistyped_model_name_names_the_models_the_channel_holds(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_runtime",
            "serve",
            "--channel",
            str(channel.root),
            "--model",
            "tags-detector",
            "--public-key",
            str(public_key_file(tmp_path)),
            "--state-dir",
            str(tmp_path / "state"),
            "--port",
            "0",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "holds no model 'tags-detector'" in proc.stderr and "it holds: tags" in proc.stderr
