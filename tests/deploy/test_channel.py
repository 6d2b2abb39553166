"""The model channel: publish, point, pull and verify, on a folder and on a real S3-API
server; every kind of damage a device can meet is refused with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runtime.channel import (
    ChannelClient,
    VerificationError,
    pointer_key,
    verify_folder,
    version_prefix,
)
from edge_runtime.storage import LocalStore, S3Store, check_key
from tests.deploy.channel_helpers import key, release
from visionloop.deploy.channel import ChannelPublisher, ImmutableVersionError

MODEL = "tags"


@pytest.fixture
def channel(tmp_path: Path) -> ChannelPublisher:
    return ChannelPublisher(LocalStore(tmp_path / "channel"), key(1))


@pytest.fixture(scope="module")
def rel(abd_onnx: Path):  # type: ignore[no-untyped-def]
    return release(abd_onnx, "1")


def test_publish_point_and_fetch(channel: ChannelPublisher, rel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    published = channel.publish(rel)
    assert not published.reused
    pointer = channel.set_pointer(MODEL, "production", "1", reason="test")
    assert pointer.version == "1" and pointer.sequence >= 1
    device = ChannelClient(LocalStore(channel.store.uri), key(1).public_raw)
    got = device.fetch_stage(MODEL, "production", tmp_path / "device")
    assert got is not None and got.version == "1"
    assert got.model_path.read_bytes() == rel.files["model.onnx"]
    m = got.manifest
    assert m["classes"] == rel.fields["classes"] and m["input_size"] == [320, 320]
    assert m["thresholds"]["conf"] == 0.05 and m["dataset_version_id"] == "d" * 64
    assert m["created_at"] and m["signing_key_id"] == key(1).key_id
    assert set(m["files"]) == set(rel.files) and all(
        n.startswith("samples/") for n in set(m["files"]) - {"model.onnx"}
    )
    expected = m["self_test"]["expected"]["model.onnx"]
    assert len(expected) == 3 and sum(len(v) for v in expected.values()) > 0, "self-test without detections"
    # a second fetch of the same stage finds the verified folder
    assert device.fetch_stage(MODEL, "production", tmp_path / "device") == got
    assert verify_folder(got.path, key(1).public_raw, MODEL, "1").manifest_sha256 == pointer.manifest_sha256


def test_versions_are_immutable(channel: ChannelPublisher, rel, abd_onnx: Path) -> None:  # type: ignore[no-untyped-def]
    first = channel.publish(rel)
    again = channel.publish(release(abd_onnx, "1"))
    assert again.reused and again.manifest_sha256 == first.manifest_sha256
    other = release(abd_onnx, "1", n_samples=2)
    with pytest.raises(ImmutableVersionError, match="already published with other files"):
        channel.publish(other)


def test_pointer_is_refused_for_an_incomplete_version(channel: ChannelPublisher, rel) -> None:  # type: ignore[no-untyped-def]
    channel.publish(rel)
    channel.set_pointer(MODEL, "production", "1")
    rel2 = release_copy(rel, "2")
    channel.publish(rel2)
    channel.store.delete(f"{version_prefix(MODEL, '2')}/manifest.sig")
    with pytest.raises(VerificationError, match="incomplete version"):
        channel.set_pointer(MODEL, "production", "2")
    assert channel.pointer(MODEL, "production").version == "1"  # type: ignore[union-attr]
    # publishing again repairs the interrupted version
    assert not channel.publish(rel2).reused
    first = channel.pointer(MODEL, "production").sequence  # type: ignore[union-attr]
    pointer = channel.set_pointer(MODEL, "production", "2")
    assert pointer.raw["previous_version"] == "1" and pointer.sequence > first


def release_copy(rel, version: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(rel, version=version)


def damage_cases() -> list[str]:
    return ["truncated", "sha256", "signature", "outside-path", "pointer", "other-manifest"]


@pytest.mark.parametrize("damage", damage_cases())
def test_device_refuses_damage(damage: str, channel: ChannelPublisher, rel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    channel.publish(rel)
    channel.set_pointer(MODEL, "production", "1")
    store: LocalStore = channel.store  # type: ignore[assignment]
    prefix = version_prefix(MODEL, "1")
    model_file = store.path(f"{prefix}/model.onnx")
    if damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:-1000])
        match = "truncated"
    elif damage == "sha256":
        data = bytearray(model_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model_file.write_bytes(bytes(data))
        match = "sha256"
    elif damage == "signature":  # the whole version re-signed by a key the device does not trust
        manifest = store.path(f"{prefix}/manifest.json").read_bytes()
        sig = json.loads(store.path(f"{prefix}/manifest.sig").read_bytes())
        sig["signature"] = key(2).sign(manifest)
        store.path(f"{prefix}/manifest.sig").write_text(json.dumps(sig))
        match = "bad signature"
    elif damage == "outside-path":  # correctly signed, but naming a file outside its folder
        manifest = json.loads(store.path(f"{prefix}/manifest.json").read_bytes())
        manifest["files"]["../../../etc/evil"] = {"sha256": "0" * 64, "size": 1}
        raw = json.dumps(manifest).encode()
        store.path(f"{prefix}/manifest.json").write_bytes(raw)
        sig = {"algorithm": "ed25519", "key_id": key(1).key_id, "signature": key(1).sign(raw)}
        store.path(f"{prefix}/manifest.sig").write_text(json.dumps(sig))
        match = "outside its version folder"
    elif damage == "pointer":
        ptr = json.loads(store.path(pointer_key(MODEL, "production")).read_bytes())
        ptr["version"] = "2"
        store.path(pointer_key(MODEL, "production")).write_text(json.dumps(ptr))
        match = "bad signature"
    else:  # the manifest replaced by another validly signed one: the pointer's sha256 no longer matches
        manifest = json.loads(store.path(f"{prefix}/manifest.json").read_bytes())
        manifest["thresholds"]["conf"] = 0.9
        raw = json.dumps(manifest).encode()
        store.path(f"{prefix}/manifest.json").write_bytes(raw)
        sig = {"algorithm": "ed25519", "key_id": key(1).key_id, "signature": key(1).sign(raw)}
        store.path(f"{prefix}/manifest.sig").write_text(json.dumps(sig))
        match = "not the one the pointer names"
    device = ChannelClient(LocalStore(store.root), key(1).public_raw)
    with pytest.raises(VerificationError, match=match):
        device.fetch_stage(MODEL, "production", tmp_path / "device")
    assert not (tmp_path / "device" / "1").exists(), "a refused version must not appear on the device"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "", "./a"])
def test_keys_outside_the_store_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="refused object key"):
        check_key(bad)


def test_s3_channel_roundtrip(s3_bucket, rel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, bucket = s3_bucket
    store = S3Store(f"s3://{bucket}/channel", client=client)
    publisher = ChannelPublisher(store, key(1))
    publisher.publish(rel)
    publisher.set_pointer(MODEL, "staging", "1")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"channel/{version_prefix(MODEL, '1')}/model.onnx" in keys
    assert f"channel/{pointer_key(MODEL, 'staging')}" in keys
    got = ChannelClient(S3Store(f"s3://{bucket}/channel", client=client), key(1).public_raw).fetch_stage(
        MODEL, "staging", tmp_path / "dev"
    )
    assert got is not None and got.model_path.read_bytes() == rel.files["model.onnx"]
    assert ChannelClient(store, key(1).public_raw).pointer(MODEL, "production") is None
