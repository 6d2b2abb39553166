"""The update agent against a real channel written by the control plane's publisher:
swaps, every kind of bad release, a channel that goes away, restarts. In each fault
test a prober keeps asking for predictions over HTTP and every answer must be a 200."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.agent import Backoff
from edge_runtime.channel import ChannelClient, pointer_key, sha256_hex, sign_pointer_body
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.storage import S3Store
from tests.deploy.channel_helpers import key
from tests.edge.helpers import MODEL, Channel, Prober, image_bytes, make_runtime, request, serving
from tests.moto_server import free_port
from visionloop.deploy.channel import ChannelPublisher, Release


def started(channel: Channel, state: Path, **config: object) -> EdgeRuntime:
    runtime = make_runtime(channel, state, **config)  # type: ignore[arg-type]
    runtime.start(background=False)
    assert runtime.agent.check_once()
    return runtime


def versions_on_disk(runtime: EdgeRuntime) -> list[str]:
    return sorted(p.name for p in runtime.agent.versions_dir.iterdir())


def test_first_model_then_swap_and_keep_last_n(channel: Channel, rel: Release, tmp_path: Path) -> None:
    runtime = make_runtime(channel, tmp_path / "state", keep=2)
    runtime.start(background=False)
    assert runtime.current is None and runtime.health()["status"] == "no-model"
    assert runtime.agent.check_once(), "an empty channel is not an error"
    assert "no production pointer" in runtime.agent.status.last_error  # type: ignore[operator]
    channel.publish(rel, "1")
    assert runtime.agent.check_once() and runtime.current is not None
    assert runtime.current.version_id == "1"
    with serving(runtime) as server, Prober(server) as prober:
        for version in ("2", "3", "4"):
            channel.publish(rel, version)
            assert runtime.agent.check_once()
            prober.wait_for(2)
    prober.assert_uninterrupted()
    assert runtime.current.version_id == "4"
    assert {"1", "4"} <= set(prober.versions()), "the prober did not see the swaps"
    assert versions_on_disk(runtime) == ["3", "4"]
    state = json.loads((runtime.agent.dir / "state.json").read_text())
    assert state["current"] == "4" and state["good"] == ["4", "3"]


def fault_test(
    channel: Channel,
    rel: Release,
    tmp_path: Path,
    break_it: Callable[[Channel], None],
    error: str,
    retried: bool,
) -> EdgeRuntime:
    """Serve version 1; ``break_it(channel)`` publishes a bad version 2; check that
    version 1 keeps being served without interruption and the error names the problem."""
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with serving(runtime) as server, Prober(server) as prober:
        break_it(channel)
        ok = runtime.agent.check_once()
        prober.wait_for(2)
        status, health = request(server, "GET", "/healthz")
    prober.assert_uninterrupted()
    assert set(prober.versions()) == {"1"}
    assert status == 200 and health["version"] == "1"
    assert error in (health["agent"]["last_error"] or ""), health["agent"]
    assert ok is not retried, "a failure to retry must report False (backoff), a rejection True"
    assert ("2" in health["agent"]["rejected"]) is not retried
    assert versions_on_disk(runtime) == ["1"], "debris of the failed download was left behind"
    return runtime


def truncated(rel: Release) -> Callable[[Channel], None]:
    def break_it(channel: Channel) -> None:
        channel.publish(rel, "2")
        path = channel.file("2", "model.onnx")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return break_it


def flipped_byte(rel: Release) -> Callable[[Channel], None]:
    def break_it(channel: Channel) -> None:
        channel.publish(rel, "2")
        path = channel.file("2", "model.onnx")
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    return break_it


def test_truncated_download_is_refused_then_retried(channel: Channel, rel: Release, tmp_path: Path) -> None:
    runtime = fault_test(channel, rel, tmp_path, truncated(rel), "truncated", retried=True)
    # the channel is repaired (the file uploaded again): the next check takes version 2
    channel.file("2", "model.onnx").write_bytes(rel.files["model.onnx"])
    assert runtime.agent.check_once() and runtime.current.version_id == "2"  # type: ignore[union-attr]


def test_sha256_mismatch_is_refused(channel: Channel, rel: Release, tmp_path: Path) -> None:
    fault_test(channel, rel, tmp_path, flipped_byte(rel), "does not match the manifest", retried=True)


def test_manifest_altered_after_signing_is_refused(channel: Channel, rel: Release, tmp_path: Path) -> None:
    def alter(channel: Channel) -> None:
        channel.publish(rel, "2")
        path = channel.file("2", "manifest.json")
        path.write_text(path.read_text().replace('"conf": 0.05', '"conf": 0.5'))
        # the pointer names the manifest's sha256: sign a pointer for the altered one
        # with the right key, so that the manifest's own signature is what fails
        pointer = channel.root / pointer_key(MODEL, "production")
        doc = json.loads(pointer.read_text())
        doc["manifest_sha256"] = sha256_hex(path.read_bytes())
        doc["signature"] = key(1).sign(sign_pointer_body(doc))
        pointer.write_text(json.dumps(doc))

    fault_test(channel, rel, tmp_path, alter, "bad signature", retried=True)


def test_release_signed_with_another_key_is_refused(channel: Channel, rel: Release, tmp_path: Path) -> None:
    def resign(channel: Channel) -> None:
        impostor = ChannelPublisher(channel.publisher.store, key(2))
        impostor.publish(replace(rel, version="2"))
        impostor.set_pointer(MODEL, "production", "2")

    fault_test(channel, rel, tmp_path, resign, "bad signature", retried=True)


def test_corrupt_onnx_is_rejected_for_good(channel: Channel, rel: Release, tmp_path: Path) -> None:
    garbage = replace(rel, files={**rel.files, "model.onnx": b"\x08\x07garbage, correctly signed" * 1000})

    def publish_garbage(channel: Channel) -> None:
        channel.publish(garbage, "2")

    runtime = fault_test(
        channel, rel, tmp_path, publish_garbage, "does not load in onnxruntime", retried=False
    )
    # not tried again: neither by this agent nor after a restart
    assert runtime.agent.check_once()
    assert "rejected before, not retried" in runtime.agent.status.last_error  # type: ignore[operator]
    again = started(channel, tmp_path / "state")
    assert again.current.version_id == "1"  # type: ignore[union-attr]
    assert "rejected before" in again.agent.status.last_error  # type: ignore[operator]
    assert versions_on_disk(again) == ["1"]


def test_model_failing_its_self_test_is_rolled_back(
    channel: Channel, rel: Release, perturbed_onnx: Path, tmp_path: Path
) -> None:
    # the expectations were computed with the real model; the file shipped is another
    wrong = replace(rel, files={**rel.files, "model.onnx": perturbed_onnx.read_bytes()})
    runtime = fault_test(
        channel,
        rel,
        tmp_path,
        lambda c: c.publish(wrong, "2"),
        "self-test of model.onnx failed",
        retried=False,
    )
    rejected = json.loads((runtime.agent.dir / "rejected.json").read_text())
    assert "no match" in rejected["2"]["reason"] and rejected["2"]["manifest_sha256"]
    # a good version published after it is taken
    channel.publish(rel, "3")
    assert runtime.agent.check_once() and runtime.current.version_id == "3"  # type: ignore[union-attr]


def test_channel_down_keeps_serving_and_backs_off(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    away = tmp_path / "channel-away"
    with serving(runtime) as server, Prober(server) as prober:
        channel.root.rename(away)
        delays = []
        for _ in range(4):
            assert not runtime.agent.check_once()
            delays.append(runtime.agent.backoff.next_delay())
            prober.wait_for(1)
        status, health = request(server, "GET", "/healthz")
        assert status == 200 and health["agent"]["consecutive_failures"] == 4
        assert "is not there" in health["agent"]["last_error"]
        assert health["agent"]["channel_reachable"] is False
        away.rename(channel.root)
        channel.publish(rel, "2")  # published while the device could not see the channel
        assert runtime.agent.check_once()
        prober.wait_for(2)
    prober.assert_uninterrupted()
    assert runtime.current.version_id == "2" and runtime.agent.status.consecutive_failures == 0  # type: ignore[union-attr]
    assert runtime.agent.backoff.failures == 0, "backoff not reset after the channel came back"
    assert all(b > a for a, b in zip(delays, delays[1:], strict=False)), f"backoff does not grow: {delays}"


def test_backoff_grows_exponentially_to_its_cap() -> None:
    backoff = Backoff(base=1.0, cap=20.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for i, delay in enumerate(delays):
        nominal = min(20.0, 2.0**i)
        assert 0.8 * nominal <= delay <= nominal
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_restart_serves_the_last_good_model_before_the_channel_answers(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    state = tmp_path / "state"
    first = started(channel, state)
    channel.publish(rel, "2")
    assert first.agent.check_once() and first.current.version_id == "2"  # type: ignore[union-attr]
    shutil.rmtree(channel.root)  # the channel is gone for good
    second = make_runtime(channel, state)
    second.start(background=False)
    assert second.current is not None and second.current.version_id == "2"
    assert not second.agent.check_once()
    assert second.current.version_id == "2"
    # a damaged copy on disk is refused by verify_folder: the previous good one serves
    model = second.agent.versions_dir / "2" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    third = make_runtime(channel, state)
    third.start(background=False)
    assert third.current is not None and third.current.version_id == "1"
    assert any("restore of 2 failed" in e and "truncated" in e for e in third.agent.status.history)


def test_int8_asked_for_but_absent_falls_back_to_float(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state", variant="int8")
    assert runtime.current is not None and runtime.current.variant == "float"
    assert "no int8_file" in runtime.current.note
    with serving(runtime) as server:
        status, doc = request(server, "GET", "/v1/model")
    assert status == 200 and doc["variant"] == "float" and doc["thresholds"]["conf"] == 0.05


def test_int8_variant_is_served_when_shipped(abd_onnx: Path, channel: Channel, tmp_path: Path) -> None:
    from tests.conftest import METAL_TAGS
    from tests.deploy.channel_helpers import THRESHOLDS, onnx_blob, samples
    from visionloop.deploy.release import build_release
    from visionloop.training.quantize import quantize_int8

    int8_path = tmp_path / "int8.onnx"
    quantize_int8(abd_onnx, int8_path, sorted(METAL_TAGS.glob("*/*.jpg")), max_images=8)
    blob = onnx_blob(abd_onnx)
    int8 = blob.model_copy(update={"data": int8_path.read_bytes(), "filename": "model.int8.onnx"})
    rel8 = build_release(MODEL, "1", blob, int8, samples(3), THRESHOLDS, {})
    channel.publish(rel8, "1")
    runtime = started(channel, tmp_path / "state", variant="int8")
    assert runtime.current is not None and runtime.current.variant == "int8"
    assert runtime.current.model_file == "model.int8.onnx"


@pytest.mark.s3
def test_s3_channel_and_an_s3_server_that_stops_answering(
    s3_bucket: tuple[Any, str], s3_server: Any, rel: Release, tmp_path: Path
) -> None:
    _, bucket = s3_bucket
    uri = f"s3://{bucket}/channel"
    publisher = ChannelPublisher(S3Store(uri, endpoint_url=s3_server.endpoint_url), key(1))
    publisher.publish(rel)
    publisher.set_pointer(MODEL, "production", "1")
    config = RuntimeConfig(model=MODEL, state_dir=tmp_path / "state", threads=1)
    up = EdgeRuntime(
        config, ChannelClient(S3Store(uri, endpoint_url=s3_server.endpoint_url), key(1).public_raw), None
    )
    up.start(background=False)
    assert up.agent.check_once() and up.current is not None and up.current.version_id == "1"
    # the same device, restarted while the S3 endpoint does not answer (nothing listens there)
    dead = f"http://127.0.0.1:{free_port()}"
    down = EdgeRuntime(config, ChannelClient(S3Store(uri, endpoint_url=dead), key(1).public_raw), None)
    down.start(background=False)
    assert down.current is not None and down.current.version_id == "1"
    assert not down.agent.check_once()
    assert down.agent.status.channel_reachable is False and dead in (down.agent.status.last_error or "")
    assert down.predict(image_bytes(1))["version"] == "1"


def test_background_loop_backs_off_while_the_channel_is_down(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state", poll_s=0.01, backoff_base_s=0.01, backoff_cap_s=0.08)
    runtime.start(background=False)
    assert runtime.agent.check_once()
    away = tmp_path / "away"
    channel.root.rename(away)
    runtime.agent.start()
    try:
        status = runtime.agent.status
        deadline = time.monotonic() + 60
        while status.consecutive_failures < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert status.consecutive_failures >= 6
        # jittered to 0.8-1.0 of the cap, and shown rounded to 2 places
        assert status.next_check_in_s is not None and round(0.8 * 0.08, 2) <= status.next_check_in_s <= 0.08
        assert runtime.current is not None and runtime.current.version_id == "1"
        away.rename(channel.root)
        while (status.consecutive_failures or status.next_check_in_s != 0.01) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert status.consecutive_failures == 0 and status.next_check_in_s == 0.01, "back to polling"
        assert runtime.agent.backoff.failures == 0
    finally:
        runtime.stop()
