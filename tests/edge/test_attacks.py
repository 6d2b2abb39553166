"""The edge runtime against TUF's attacks on an update system and the defects a hostile
probe found (issue 17). One test per attack class and per defect. In each a runtime
serves over HTTP throughout (a prober's every request must get a 200), the attack is
refused with its reason in ``/healthz``, the spool's counts reconcile, and the served
version and the highest pointer sequence survive a restart."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge_runtime.channel import MAX_POINTER_BYTES, pointer_key, sha256_hex, sign_pointer_body
from edge_runtime.server import EdgeServer
from edge_runtime.storage import S3Store
from edge_runtime.trust import KEYS_DOCUMENT, Keyring
from tests.conftest import REPO_ROOT
from tests.deploy.channel_helpers import key
from tests.edge.attack_helpers import (
    ThrottlingProxy,
    reconcile,
    refused,
    remount_read_only,
    runtime_on,
    survives_restart,
    tmpfs,
    under_attack,
)
from tests.edge.helpers import (
    MODEL,
    Channel,
    image_bytes,
    noise_jpeg,
    predict,
    public_key_file,
    request,
    serving,
)
from visionloop.deploy import keys
from visionloop.deploy.channel import ChannelPublisher, Release

PRODUCTION = pointer_key(MODEL, "production")


def seq(channel: Channel) -> int:
    """The sequence of the production pointer in the channel now."""
    return int(json.loads((channel.root / PRODUCTION).read_text())["sequence"])


def started(channel: Channel, state: Path, **config: Any) -> Any:
    runtime = runtime_on(channel.root, state, **config)
    runtime.start(background=False)
    assert runtime.agent.check_once()
    return runtime


# --- TUF's attacks ------------------------------------------------------------------


def test_arbitrary_installation_pointer_and_release_of_a_foreign_key(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    accepted = seq(channel)
    with under_attack(runtime) as scene:
        impostor = ChannelPublisher(channel.publisher.store, key(2))
        impostor.publish(replace(rel, version="2"))
        impostor.set_pointer(MODEL, "production", "2")
        assert not runtime.agent.check_once()
        refused(scene, "does not trust")
        assert runtime.current.version_id == "1"
    reconcile(runtime)
    survives_restart(runtime, "1", accepted)


def test_rollback_replayed_pointer_is_refused(channel: Channel, rel: Release, tmp_path: Path) -> None:
    """Issue 17's repro: v1 (sequence 1), v2 (sequence 2), v1's pointer copied back."""
    channel.publish(rel, "1")
    saved_v1, first = (channel.root / PRODUCTION).read_bytes(), seq(channel)
    runtime = started(channel, tmp_path / "state")
    channel.publish(rel, "2")
    second = seq(channel)
    assert runtime.agent.check_once() and runtime.current.version_id == "2"
    with under_attack(runtime) as scene:
        (channel.root / PRODUCTION).write_bytes(saved_v1)
        assert not runtime.agent.check_once()
        health = refused(scene, f"rollback refused: pointer sequence {first} (version 1)")
        assert health["agent"]["highest_sequence"] == second and health["version"] == "2"
    reconcile(runtime)
    again = survives_restart(runtime, "2", second)
    assert not again.agent.check_once() and "rollback refused" in again.agent.status.last_error
    # a deliberate rollback (run.py rollback) is a new, higher pointer naming the older version
    channel.publisher.set_pointer(MODEL, "production", "1", reason="rollback from version 2")
    assert again.agent.check_once() and again.current.version_id == "1"
    assert again.agent.describe()["highest_sequence"] == seq(channel) > second


def test_indefinite_freeze_expired_pointer_keeps_serving_and_says_stale(
    channel: Channel, rel: Release, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    frozen = ChannelPublisher(channel.publisher.store, key(1), ttl_hours=0.5 / 3600)  # expires in 0.5 s
    with under_attack(runtime) as scene:
        frozen.publish(replace(rel, version="2"))
        pointer = frozen.set_pointer(MODEL, "production", "2")
        while not pointer.expired():  # a mirror that froze the channel: nothing fresh ever comes
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="edge_runtime.agent"):
            runtime.agent.check_once()
        health = refused(scene, "channel stale", channel="stale")
        assert health["version"] == "1" and health["status"] == "ok"
        status, model = request(scene.server, "GET", "/v1/model")
        assert status == 200 and model["channel"] == "stale" and model["version"] == "1"
        assert any("channel stale" in r.getMessage() for r in caplog.records)
    reconcile(runtime)
    again = survives_restart(runtime, "1", seq(channel))
    assert again.health()["channel"] == "stale"
    channel.publish(rel, "3")  # the publisher is back: a fresh pointer
    assert again.agent.check_once() and again.current.version_id == "3" and again.health()["channel"] == "ok"


def test_endless_data_oversized_objects_are_cut_off(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        channel.publish(rel, "2")
        model = channel.file("2", "model.onnx")
        with open(model, "r+b") as f:  # 600 MB behind model.onnx (sparse: no disk used here)
            f.truncate(600 * 2**20)
        accepted = seq(channel)
        assert not runtime.agent.check_once()
        refused(scene, f"over the {len(rel.files['model.onnx'])} allowed")
        debris = [p for p in runtime.agent.versions_dir.iterdir() if p.name != "1"]
        assert debris == [], "the oversized download was left on the state disk"
        # a pointer the size of a model is refused before it is parsed
        (channel.root / PRODUCTION).write_bytes(b"{" + b" " * (2 * 2**20) + b"}")
        assert not runtime.agent.check_once()
        refused(scene, f"over the {MAX_POINTER_BYTES} allowed; not read")
    reconcile(runtime)
    survives_restart(runtime, "1", accepted)


def test_slow_retrieval_download_deadline(
    s3_bucket: tuple[Any, str], s3_server: Any, rel: Release, tmp_path: Path
) -> None:
    _, bucket = s3_bucket
    uri = f"s3://{bucket}/channel"
    publisher = ChannelPublisher(S3Store(uri, endpoint_url=s3_server.endpoint_url), key(1))
    publisher.publish(replace(rel, version="1"))
    publisher.set_pointer(MODEL, "production", "1")
    runtime = runtime_on(S3Store(uri, endpoint_url=s3_server.endpoint_url), tmp_path / "state")
    runtime.start(background=False)
    assert runtime.agent.check_once() and runtime.current.version_id == "1"
    publisher.publish(replace(rel, version="2"))
    accepted = publisher.set_pointer(MODEL, "production", "2").sequence
    proxy = ThrottlingProxy(s3_server.port, rate=200_000)  # 13 MB at 200 kB/s: a minute
    slow = runtime_on(S3Store(uri, endpoint_url=proxy.url), tmp_path / "state", timeout_s=3.0)
    slow.start(background=False)
    try:
        with under_attack(slow) as scene:
            assert not slow.agent.check_once()
            refused(scene, "deadline")
            assert slow.current.version_id == "1"
    finally:
        proxy.close()
    reconcile(slow)
    survives_restart(slow, "1", accepted)


def test_mix_and_match_manifest_of_another_release(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        channel.publisher.publish(replace(rel, version="2"))
        # a pointer for version 2 naming version 1's manifest (validly signed: a stolen
        # pointer body would do the same)
        doc = json.loads((channel.root / PRODUCTION).read_text())
        doc.update(version="2", sequence=doc["sequence"] + 1)
        mixed = doc["sequence"]
        doc["signature"] = key(1).sign(sign_pointer_body(doc))
        (channel.root / PRODUCTION).write_text(json.dumps(doc))
        assert not runtime.agent.check_once()
        refused(scene, "not the one the pointer names")
        assert runtime.current.version_id == "1"
    reconcile(runtime)
    survives_restart(runtime, "1", mixed)


def test_malicious_mirror_symlinks_and_special_files(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    secret = tmp_path / "outside.bin"
    secret.write_bytes(b"not for the device")
    with under_attack(runtime) as scene:
        channel.publish(rel, "2")
        model = channel.file("2", "model.onnx")
        model.unlink()
        model.symlink_to(secret)
        assert not runtime.agent.check_once()
        refused(scene, "symlink")
        model.unlink()
        os.mkfifo(model)  # reading a FIFO blocks forever unless it is refused
        check = threading.Thread(target=runtime.agent.check_once, daemon=True)
        check.start()
        check.join(timeout=60)
        assert not check.is_alive(), "the agent hung reading a FIFO in the channel"
        refused(scene, "not a regular file")
        assert runtime.current.version_id == "1"
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_key_compromise_rotation_and_revocation(channel: Channel, rel: Release, tmp_path: Path) -> None:
    """The root (offline) names the signing key; the signing key leaks; the operator
    revokes it and names a new one; the thief's pointers and an old key document are
    refused, the new key's pointer is served, and all of it survives a restart."""
    root, leaked, fresh = key(7), key(1), key(2)
    store = channel.publisher.store
    keys.write(store, root, add=[leaked.public_raw], reason="first key")
    channel.publish(rel, "1")
    old_keys = (channel.root / KEYS_DOCUMENT).read_bytes()
    ring = Keyring(root=root.public_raw, path=tmp_path / "state" / "trust.json")
    runtime = runtime_on(channel.root, tmp_path / "state", ring)
    runtime.start(background=False)
    assert runtime.agent.check_once() and runtime.current.version_id == "1"
    thief = ChannelPublisher(store, leaked)
    good_sequence = 0
    with under_attack(runtime) as scene:
        thief.publish(replace(rel, version="66", fields={**rel.fields, "code_commit": "evil"}))
        doc = json.loads((channel.root / PRODUCTION).read_text())
        thief.set_pointer(MODEL, "production", "66")
        assert runtime.agent.check_once() and runtime.current.version_id == "66"  # undetectable until revoked
        # the operator, with the offline root: revoke the leaked key, name the new one
        keys.write(store, root, add=[fresh.public_raw], revoke=[leaked.key_id], reason="signing key leaked")
        assert not runtime.agent.check_once()
        refused(scene, "revoked key")
        assert runtime.current.version_id == "66", "a device is never left without a model"
        ChannelPublisher(store, fresh).resign_manifest(MODEL, "1")
        good_sequence = (
            ChannelPublisher(store, fresh).set_pointer(MODEL, "production", "1", reason="leak").sequence
        )
        assert runtime.agent.check_once() and runtime.current.version_id == "1"
        # the thief replays the old key document, then signs a higher pointer with the old key
        new_keys = (channel.root / KEYS_DOCUMENT).read_bytes()
        (channel.root / KEYS_DOCUMENT).write_bytes(old_keys)
        assert not runtime.agent.check_once()
        refused(scene, "older than the accepted version 2")
        (channel.root / KEYS_DOCUMENT).write_bytes(new_keys)
        manifest = channel.file("66", "manifest.json").read_bytes()
        doc.update(version="66", sequence=10**6, manifest_sha256=sha256_hex(manifest))
        doc["signature"] = leaked.sign(sign_pointer_body(doc))
        (channel.root / PRODUCTION).write_text(json.dumps(doc))
        assert not runtime.agent.check_once()
        refused(scene, "revoked key")
        assert runtime.current.version_id == "1"
        assert scene.health()["agent"]["keys"]["revoked"] == [leaked.key_id]
    reconcile(runtime)
    again = survives_restart(runtime, "1", good_sequence)
    assert again.agent.client.keyring.document.version == 2, "the revocation was not persisted"
    assert not again.agent.check_once() and "revoked key" in again.agent.status.last_error


# --- the probe's defects ----------------------------------------------------------


def big_png(size: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), 90).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def test_memory_per_request_is_bounded_by_decoded_size(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        png = big_png(6300)  # just under the 40 Mpx cap: 119 MB decoded, 238 MB working set
        status, doc = predict(scene.server, png)
        assert status == 413 and "decodes to" in doc["error"], doc
        jpeg = io.BytesIO()
        Image.open(io.BytesIO(image_bytes(0))).resize((6000, 6000)).save(jpeg, format="JPEG", quality=70)
        status, doc = predict(scene.server, jpeg.getvalue())  # decoded at 1/2 by the JPEG decoder
        assert status == 200 and doc["image_size"] == [6000, 6000], doc
        assert all(0 <= v <= 6000 for d in doc["detections"] for v in d["box"])
        # the budget is given back: between the prober's requests nothing is held (a read
        # while one of its images is being decoded sees that image, so look a few times)
        deadline, released = time.monotonic() + 10, False
        while not released and time.monotonic() < deadline:
            released = scene.health()["image_memory"]["in_use_bytes"] == 0
            time.sleep(0 if released else 0.005)
        assert released, "the image memory budget was never given back"
        # the prediction log got the statistics of the image as sent, from its thumbnail
        lines = [json.loads(line) for line in runtime.predlog.path.read_text().splitlines()]
        assert [(line["width"], line["height"]) for line in lines if line["width"] == 6000] == [
            (6000.0, 6000.0)
        ]
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_read_only_spool_counts_write_errors_and_answers(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    with tmpfs(tmp_path / "state" / "spool", "8m") as spool:
        runtime = started(channel, tmp_path / "state")
        remount_read_only(spool)
        with under_attack(runtime) as scene:
            status, doc = predict(scene.server, noise_jpeg(1))
            assert status == 200 and doc["feedback"]["spool"] == "write_error", doc
            assert scene.health()["spool"]["write_errors"] >= 1
        reconcile(runtime)
        survives_restart(runtime, "1", seq(channel))


def sixteen_bit(data: bytes) -> bytes:
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint16) * 257
    buf = io.BytesIO()
    image = Image.fromarray(grey)
    assert image.mode == "I;16"
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_16_bit_greyscale_is_scaled_not_clipped(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        for i in range(12):  # a photo whose 8-bit greyscale copy has detections
            eight = io.BytesIO()
            Image.open(io.BytesIO(image_bytes(i))).convert("L").save(eight, format="PNG")
            _, reference = predict(scene.server, eight.getvalue())
            if reference["detections"]:
                break
        assert reference["detections"], "no greyscale photo with detections: the test proves nothing"
        status, doc = predict(scene.server, sixteen_bit(image_bytes(i)))
        assert status == 200
        assert [d["class_name"] for d in doc["detections"]] == [
            d["class_name"] for d in reference["detections"]
        ]
        assert abs(doc["detections"][0]["score"] - reference["detections"][0]["score"]) < 0.02
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_healthz_answers_when_every_connection_slot_is_taken(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with serving(runtime, max_connections=4) as server:
        host, port = server.server_address[:2]
        slow = []
        for _ in range(4):  # slow clients: a request line and half a header, then nothing
            s = socket.create_connection((str(host), int(port)))
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-")
            slow.append(s)
        deadline = time.monotonic() + 30
        while server._connections._value > 0 and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        status, health = request(server, "GET", "/healthz")
        assert status == 200 and health["http"]["probes_answered_busy"] >= 1, health
        status, _ = predict(server, image_bytes(0))
        assert status == 503, "the slots were not all taken: the test proves nothing"
        for s in slow:
            s.close()
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


@pytest.mark.parametrize(
    "role, name",
    [
        ("self-test sample", "/etc/hostname"),
        ("self-test sample", "samples/../../../etc/hostname"),
        ("self-test sample", "samples/not-listed.jpg"),
        ("int8_file", "/etc/hostname"),
        ("bundle member", "../parent.onnx"),
    ],
)
def test_every_manifest_path_is_confined_and_listed(
    role: str, name: str, channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    fields = json.loads(json.dumps(rel.fields))
    int8 = None
    if role == "self-test sample":
        fields["self_test"]["expected"]["model.onnx"][name] = []
    elif role == "int8_file":
        int8 = name
    else:
        fields["hierarchy"] = {"parent": {"file": name}, "children": {}}
    hostile = replace(rel, version="2", fields=fields, int8_file=int8)
    with under_attack(runtime) as scene:
        store = channel.publisher.store
        manifest = hostile.manifest(key(1))  # signed with the right key: only the path is wrong
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        for file, blob in hostile.files.items():
            store.put(f"models/{MODEL}/2/{file}", blob)
        store.put(f"models/{MODEL}/2/manifest.json", data)
        store.put(
            f"models/{MODEL}/2/manifest.sig",
            json.dumps(
                {"algorithm": "ed25519", "key_id": key(1).key_id, "signature": key(1).sign(data)}
            ).encode(),
        )
        doc = json.loads((channel.root / PRODUCTION).read_text())
        doc.update(version="2", sequence=doc["sequence"] + 1, manifest_sha256=sha256_hex(data))
        doc["signature"] = key(1).sign(sign_pointer_body(doc))
        (channel.root / PRODUCTION).write_text(json.dumps(doc))
        assert not runtime.agent.check_once()
        reason = "not among its files" if name == "samples/not-listed.jpg" else "outside its version folder"
        refused(scene, reason)
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def raw_request(server: Any, head: bytes) -> bytes:
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=30) as s:
        s.sendall(head)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_content_length_is_parsed_strictly(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        for value in ("²".encode(), b"-1", b"1e3", b" "):
            answer = raw_request(
                scene.server, b"POST /v1/predict HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400") and b"not a number of bytes" in answer, answer[:200]
        answer = raw_request(
            scene.server, b"POST /v1/predict HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
        )
        assert answer.startswith(b"HTTP/1.1 411"), answer[:200]
        assert scene.health()["errors"] == 0
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_ipv6_loopback(channel: Channel, rel: Release, tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    try:
        server = EdgeServer(runtime, "::1", 0)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1 here: {exc}")
    server.start_background()
    try:
        assert server.url.startswith("http://[::1]:")
        status, doc = predict(server, image_bytes(0))
        assert status == 200 and doc["version"] == "1"
    finally:
        server.shutdown()
        server.server_close()
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_spooled_images_keep_their_format_extension(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime) as scene:
        gif = io.BytesIO()
        Image.open(io.BytesIO(noise_jpeg(5))).save(gif, format="GIF")
        status, doc = predict(scene.server, gif.getvalue())
        assert status == 200 and doc["feedback"]["spool"] == "spooled", doc
        sha = sha256_hex(gif.getvalue())
        assert sorted(p.name for p in runtime.spool.folder.glob(f"{sha}.*")) == [f"{sha}.gif", f"{sha}.json"]
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))


def test_full_state_disk_prunes_old_versions(channel: Channel, rel: Release, tmp_path: Path) -> None:
    for v in ("1", "2", "3"):
        channel.publish(rel, v)
    size = sum(len(b) for b in rel.files.values())
    with tmpfs(tmp_path / "state", f"{int(size * 3.6) // 1024}k"):
        runtime = runtime_on(channel.root, tmp_path / "state", keep=3)
        runtime.start(background=False)
        for v in ("1", "2", "3"):
            channel.publisher.set_pointer(MODEL, "production", v)
            assert runtime.agent.check_once() and runtime.current.version_id == v
        with under_attack(runtime) as scene:
            channel.publish(rel, "4")  # does not fit beside three versions
            assert runtime.agent.check_once(), runtime.agent.status.last_error
            assert runtime.current.version_id == "4"
            assert any("state disk full" in e for e in scene.health()["agent"]["history"])
            on_disk = sorted(p.name for p in runtime.agent.versions_dir.iterdir())
            assert on_disk == ["2", "3", "4"], on_disk
        reconcile(runtime)
        survives_restart(runtime, "4", seq(channel))


def test_a_channel_that_lost_its_pointer_says_so(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = started(channel, tmp_path / "state")
    accepted = seq(channel)
    with under_attack(runtime) as scene:
        shutil.rmtree(channel.root)
        channel.root.mkdir()  # the channel folder replaced by an empty one
        assert not runtime.agent.check_once()
        health = refused(scene, "lost its production pointer", channel="lost-pointer")
        assert health["agent"]["consecutive_failures"] == 1
    reconcile(runtime)
    survives_restart(runtime, "1", accepted)


def test_read_only_empty_state_dir_exits_with_a_message(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    with tmpfs(tmp_path / "ro-state", "1m", read_only=True) as state:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_runtime",
                "serve",
                "--port",
                "0",
                "--channel",
                str(channel.root),
                "--model",
                MODEL,
                "--public-key",
                str(public_key_file(tmp_path)),
                "--state-dir",
                str(state),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "writable --state-dir" in done.stderr and "Read-only file system" in done.stderr, done.stderr
    # the same device with a writable state dir serves, and keeps what it accepted
    runtime = started(channel, tmp_path / "state")
    with under_attack(runtime):
        pass
    reconcile(runtime)
    survives_restart(runtime, "1", seq(channel))
