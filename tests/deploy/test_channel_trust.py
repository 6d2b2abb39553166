"""The publishing side of rollback, freeze and key protection: racing publishers never
write the same sequence (a folder's flock and S3's conditional puts on the real moto
server), pointers carry an expiry, and the operator's `run.py channel ...` commands
(refresh, key generation, init, rotation, revocation) against a real folder channel
and a device that trusts only the root key."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edge_runtime.channel import ChannelClient, parse_time
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.storage import LocalStore, S3Store, Store
from edge_runtime.trust import Keyring
from steps.deployment.cli import channel as channel_cli
from tests.deploy.channel_helpers import key, release
from visionloop.deploy.channel import ChannelPublisher
from visionloop.deploy.signing import parse_private_key

MODEL = "tags"


@pytest.fixture(scope="module")
def rel(abd_onnx: Path) -> Any:
    return release(abd_onnx, "1")


def race(store_of: Any, rel: Any) -> list[int]:
    ChannelPublisher(store_of(), key(1)).publish(rel)
    sequences: list[int] = []
    errors: list[BaseException] = []

    def publish_many() -> None:
        publisher = ChannelPublisher(store_of(), key(1))
        try:
            for _ in range(8):
                sequences.append(publisher.set_pointer(MODEL, "production", "1").sequence)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return sequences


def test_racing_publishers_on_a_folder_never_repeat_a_sequence(rel: Any, tmp_path: Path) -> None:
    sequences = race(lambda: LocalStore(tmp_path / "channel"), rel)
    assert len(sequences) == len(set(sequences)) == 24
    final = ChannelClient(LocalStore(tmp_path / "channel"), key(1).public_raw).pointer(MODEL, "production")
    assert final is not None and final.sequence == max(sequences)


def test_racing_publishers_on_s3_never_repeat_a_sequence(
    s3_bucket: tuple[Any, str], s3_server: Any, rel: Any
) -> None:
    _, bucket = s3_bucket
    uri = f"s3://{bucket}/channel"
    sequences = race(lambda: S3Store(uri, endpoint_url=s3_server.endpoint_url), rel)
    assert len(sequences) == len(set(sequences)) == 24
    store = S3Store(uri, endpoint_url=s3_server.endpoint_url)
    assert store.conditional, "moto answers conditional puts: the fallback must not have been taken"
    final = ChannelClient(store, key(1).public_raw).pointer(MODEL, "production")
    assert final is not None and final.sequence == max(sequences)


def test_pointers_carry_a_signed_expiry(rel: Any, tmp_path: Path) -> None:
    publisher = ChannelPublisher(LocalStore(tmp_path / "channel"), key(1), ttl_hours=5)
    publisher.publish(rel)
    pointer = publisher.set_pointer(MODEL, "production", "1")
    expiry = parse_time(pointer.expires_at)
    assert expiry is not None and not pointer.expired()
    assert abs(expiry - (datetime.now(UTC) + timedelta(hours=5))) < timedelta(minutes=1)
    assert pointer.raw["format"] == 2 and pointer.signing_key_id == key(1).key_id


def cli(args: list[str], signing: str, channel: Path) -> str:
    where = [] if args[:2] == ["keys", "generate"] else ["--channel", str(channel)]
    result = CliRunner().invoke(channel_cli, [*args, *where], env={"VISIONLOOP_SIGNING_KEY": signing})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def device(store: Store, state: Path, root: bytes) -> EdgeRuntime:
    ring = Keyring(root=root, path=state / "trust.json")
    config = RuntimeConfig(model=MODEL, state_dir=state, device_id="test-device", threads=1)
    runtime = EdgeRuntime(config, ChannelClient(store, ring), None)
    runtime.start(background=False)
    return runtime


def test_channel_commands_refresh_init_rotate_revoke(rel: Any, tmp_path: Path) -> None:
    folder = tmp_path / "channel"
    store = LocalStore(folder)
    first_key = bytes([1]).hex() * 32
    publisher = ChannelPublisher(store, key(1))
    publisher.publish(rel)
    before = publisher.set_pointer(MODEL, "production", "1")

    out = cli(["refresh"], first_key, folder)
    after = publisher.pointer(MODEL, "production")
    assert after is not None and after.sequence > before.sequence and f"sequence {after.sequence}" in out

    root_file = tmp_path / "offline" / "root.pem"
    assert "keep it secret" in cli(["keys", "generate", "--out", str(root_file)], first_key, folder)
    assert root_file.stat().st_mode & 0o077 == 0, "the root key file is readable by others"
    root = parse_private_key(root_file.read_text(), "root")
    cli(["keys", "init", "--root-key-file", str(root_file)], first_key, folder)
    assert '"version": 1' in cli(["keys", "show"], first_key, folder)

    runtime = device(store, tmp_path / "state", root.public_raw)
    assert runtime.agent.check_once() and runtime.current is not None and runtime.current.version_id == "1"

    # rotation: a new signing key, the old one revoked; the pipeline re-signs with the new one
    new_file = tmp_path / "signing-2.pem"
    cli(["keys", "generate", "--out", str(new_file)], first_key, folder)
    new = parse_private_key(new_file.read_text(), "new")
    out = cli(
        ["keys", "rotate", "--root-key-file", str(root_file), "--new-key-file", str(new_file)],
        first_key,
        folder,
    )
    assert f"revoked {key(1).key_id}" in out
    assert not runtime.agent.check_once() and "revoked key" in (runtime.agent.status.last_error or "")
    with pytest.raises(AssertionError, match="not signed by the current signing key"):
        cli(["refresh"], new_file.read_text(), folder)
    cli(["refresh", "--resign"], new_file.read_text(), folder)
    assert runtime.agent.check_once(), runtime.agent.status.last_error
    assert runtime.agent.describe()["keys"]["keys_version"] == 2

    # a release published with the new key is served; revoking the new key stops that too
    ChannelPublisher(store, new).publish(replace(rel, version="2"))
    ChannelPublisher(store, new).set_pointer(MODEL, "production", "2")
    assert runtime.agent.check_once() and runtime.current.version_id == "2"
    third = tmp_path / "signing-3.pem"
    cli(["keys", "generate", "--out", str(third)], first_key, folder)
    cli(
        ["keys", "revoke", new.key_id, "--root-key-file", str(root_file), "--add-key-file", str(third)],
        first_key,
        folder,
    )
    assert not runtime.agent.check_once() and "revoked key" in (runtime.agent.status.last_error or "")
    assert runtime.current.version_id == "2", "a device is never left without a model"
    # a root other than the channel's is refused by the command itself
    other_root = tmp_path / "other-root.pem"
    cli(["keys", "generate", "--out", str(other_root)], first_key, folder)
    result = CliRunner().invoke(
        channel_cli,
        ["keys", "revoke", new.key_id, "--root-key-file", str(other_root), "--channel", str(folder)],
        env={"VISIONLOOP_SIGNING_KEY": first_key},
    )
    assert result.exit_code != 0 and "does not verify with the root key" in result.output
