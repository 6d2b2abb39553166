"""The HTTP server, the prediction log, folder-watch mode and shadow mode, on a real
channel with the real ABD model; HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from edge_runtime.detector import OnnxDetector
from edge_runtime.shadow import disagreement
from edge_runtime.watch import FolderWatcher
from tests.deploy.channel_helpers import release
from tests.edge.helpers import Channel, image_bytes, make_runtime, noise_jpeg, predict, request, serving
from visionloop.deploy.channel import Release


def test_predict_model_and_health(channel: Channel, rel: Release, abd_onnx: Path, tmp_path: Path) -> None:
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    with serving(runtime) as server:
        status, health = request(server, "GET", "/healthz")
        assert status == 503 and health["status"] == "no-model"
        status, doc = predict(server, image_bytes(1))
        assert status == 503 and "no model loaded yet" in doc["error"]
        channel.publish(rel, "1")
        assert runtime.agent.check_once()
        status, doc = predict(server, image_bytes(1))
        assert status == 200 and doc["version"] == "1" and doc["model"] == "tags" and doc["latency_ms"] > 0
        # the detections are the detector's own, class names and xyxy pixel boxes included
        expected = OnnxDetector(abd_onnx, conf=0.05, iou=0.7).predict(image_bytes(1))
        assert len(doc["detections"]) == len(expected) > 0
        for got, want in zip(doc["detections"], expected, strict=True):
            assert got["class_name"] == want.class_name and abs(got["score"] - want.score) < 1e-6
            assert got["box"] == list(want.box)
        assert doc["image_size"] == [450, 300]
        status, model = request(server, "GET", "/v1/model")
        assert status == 200 and model["version"] == "1" and model["thresholds"]["uncertain_high"] == 0.3
        assert model["manifest_sha256"] == runtime.current.version.manifest_sha256  # type: ignore[union-attr]
        status, health = request(server, "GET", "/healthz")
        assert status == 200 and health["version"] == "1" and health["predictions"] == 1
        assert request(server, "GET", "/nope")[0] == 404
        status, doc = predict(server, b"not an image at all")
        assert status == 400 and "not a decodable image" in doc["error"]


def test_token_and_upload_limit(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    runtime.agent.check_once()
    data = image_bytes(0)
    with serving(runtime, token="s3cret", max_upload_bytes=len(data)) as server:
        assert predict(server, data)[0] == 401
        assert predict(server, data, token="wrong")[0] == 401
        assert request(server, "GET", "/v1/model")[0] == 401
        assert request(server, "GET", "/healthz")[0] == 200, "liveness probes need no token"
        assert predict(server, data, token="s3cret")[0] == 200
        status, doc = predict(server, data + b"x", token="s3cret")
        assert status == 413 and f"over the limit of {len(data)} bytes" in doc["error"]
        # a body announced as huge is refused before it is read
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
        conn.putrequest("POST", "/v1/predict")
        conn.putheader("Authorization", "Bearer s3cret")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()
    assert runtime.predictions == 1


def test_prediction_log_lines(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    runtime.agent.check_once()
    results = [runtime.predict(image_bytes(i)) for i in range(3)] + [runtime.predict(noise_jpeg(5, (64, 48)))]
    lines = [json.loads(x) for x in (tmp_path / "state" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    for line, result in zip(lines, results, strict=True):
        assert line["version"] == "1" and line["boxes"] == len(result["detections"])
        assert line["latency_ms"] == result["latency_ms"] and line["time"].endswith("Z")
        scores = [d["score"] for d in result["detections"]]
        assert line["max_score"] == round(max(scores, default=0.0), 4)
        assert len(line["box_sizes"]) == len(scores) and all(w > 0 and h > 0 for w, h in line["box_sizes"])
        assert 0 < line["brightness"] < 1 and line["contrast"] > 0
    assert lines[0]["width"] == 450 and lines[0]["height"] == 300
    assert lines[3]["width"] == 64 and lines[3]["feedback"] == results[3]["feedback"]["reason"]


def test_watch_folder(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    camera, results = tmp_path / "camera", tmp_path / "results"
    camera.mkdir()
    watcher = FolderWatcher(runtime, camera, results)
    (camera / "a.jpg").write_bytes(image_bytes(1))
    (camera / "broken.jpg").write_bytes(b"half a jpeg")
    (camera / "notes.txt").write_text("not an image: ignored")
    assert watcher.scan_once() == 0, "a file is taken only once it is seen unchanged twice"
    assert watcher.scan_once() == 0, "no model yet: files wait"
    assert (camera / "a.jpg").exists()
    runtime.agent.check_once()
    (camera / "b.png").write_bytes(image_bytes(2))  # arrives later, still being written
    assert watcher.scan_once() == 2
    doc = json.loads((results / "a.json").read_text())
    assert doc["file"] == "a.jpg" and doc["version"] == "1" and doc["detections"]
    assert (camera / "processed" / "a.jpg").read_bytes() == image_bytes(1)
    assert (camera / "failed" / "broken.jpg").exists()
    assert "not a decodable image" in json.loads((results / "broken.error.json").read_text())["error"]
    assert (camera / "b.png").exists() and (camera / "notes.txt").exists()
    assert watcher.scan_once() == 1 and (results / "b.json").exists()
    (camera / "a.jpg").write_bytes(image_bytes(1))  # the same name again: nothing is overwritten
    watcher.scan_once()
    watcher.scan_once()
    assert (camera / "processed" / "a.1.jpg").exists() and watcher.processed == 3 and watcher.failed == 1


def test_shadow_mode_logs_disagreements(
    channel: Channel, rel: Release, perturbed_onnx: Path, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    channel.publish(release(perturbed_onnx, "2"), "2", stage="staging")  # passes its own self-test
    runtime = make_runtime(channel, tmp_path / "state", shadow=True)
    runtime.start()  # background threads: the agents, the shadow worker
    try:
        assert runtime.agent.check_once() and runtime.shadow_agent is not None
        assert runtime.shadow_agent.check_once() and runtime.shadow is not None
        results = [runtime.predict(image_bytes(i)) for i in range(6)]
        runtime.shadow.join()
        assert all(r["version"] == "1" for r in results), "production answers, staging only shadows"
        counters = runtime.shadow.counters
        assert counters["compared"] + counters["skipped_busy"] == 6 and counters["errors"] == 0
        lines = [json.loads(x) for x in (tmp_path / "state" / "shadow.jsonl").read_text().splitlines()]
        assert len(lines) == counters["disagreed"] >= 1
        assert (
            lines[0]["production_version"] == "1" and lines[0]["staging_version"] == "2" and lines[0]["why"]
        )
        assert runtime.health()["shadow"]["agent"]["serving"] == "2"
    finally:
        runtime.stop()


def test_disagreement_rule() -> None:
    from edge_runtime.detector import Detection

    a = Detection(1, "tag", 0.9, (10.0, 10.0, 50.0, 50.0))
    assert disagreement([a], [Detection(1, "tag", 0.5, (12.0, 11.0, 52.0, 49.0))]) is None
    assert "missing in staging" in (disagreement([a], [Detection(2, "x", 0.9, a.box)]) or "")
    assert "IoU" in (disagreement([a], [Detection(1, "tag", 0.9, (40.0, 40.0, 90.0, 90.0))]) or "")
    assert "1 detections in production, 0" in (disagreement([a], []) or "")


def test_connections_beyond_the_limit_get_503_at_once(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    runtime.agent.check_once()
    with serving(runtime, max_connections=1) as server:
        host, port = server.server_address[:2]
        idle = http.client.HTTPConnection(str(host), int(port), timeout=30)
        idle.request("GET", "/healthz")  # keep-alive: this connection keeps its thread
        assert idle.getresponse().read()
        status, doc = request(server, "GET", "/v1/model")
        assert status == 503 and "too many connections" in doc["error"]
        status, health = request(server, "GET", "/healthz")  # the readiness probe still gets through
        assert status == 200 and health["http"]["probes_answered_busy"] == 1
        idle.close()
        deadline = time.monotonic() + 30
        while True:  # until the closed connection's thread has finished (each try holds the slot briefly)
            status, doc = request(server, "GET", "/v1/model")
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        _, health = request(server, "GET", "/healthz")
        assert status == 200 and health["http"]["refused_busy"] >= 1


def test_prediction_log_in_the_background(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    runtime.agent.check_once()
    runtime.predlog.start()
    try:
        results = [runtime.predict(image_bytes(i)) for i in range(5)]
        runtime.predlog.flush()
    finally:
        runtime.predlog.stop()
    lines = [json.loads(x) for x in runtime.predlog.path.read_text().splitlines()]
    assert len(lines) + runtime.predlog.dropped == 5 and runtime.predlog.errors == 0
    by_latency = {r["latency_ms"]: r for r in results}
    assert all(line["boxes"] == len(by_latency[line["latency_ms"]]["detections"]) for line in lines)
