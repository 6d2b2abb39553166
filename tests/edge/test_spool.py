"""The feedback spool and its uploader: what goes back, the byte bound and its
drop-newest policy, a store that is down, a restart with a full spool, uploads keyed
by content hash (twice stores once), on a folder and on a real S3-API server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.detector import Detection
from edge_runtime.model import Thresholds
from edge_runtime.runtime import feedback_reason
from edge_runtime.spool import FeedbackSpool, Uploader
from edge_runtime.storage import LocalStore, S3Store
from tests.edge.helpers import Channel, Prober, make_runtime, noise_jpeg, predict, serving
from visionloop.deploy.channel import Release


def det(score: float) -> Detection:
    return Detection(0, "tag", score, (0.0, 0.0, 10.0, 10.0))


def test_feedback_rule() -> None:
    t = Thresholds(conf=0.25, iou=0.7, uncertain_low=0.3, uncertain_high=0.6)
    assert feedback_reason([], t) == "no detection above conf"
    assert feedback_reason([det(0.25)], t) == "no detection above conf"  # strictly above, like the detector
    assert feedback_reason([det(0.9), det(0.45)], t) == "uncertain score 0.450"
    assert feedback_reason([det(0.9), det(0.6)], t) is None  # the band's top is excluded
    assert feedback_reason([det(0.9), det(0.29)], t) is None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_spool_bound_drop_newest_and_dedupe(tmp_path: Path) -> None:
    images = [noise_jpeg(i) for i in range(6)]
    item = len(images[0]) + 400  # image + metadata, roughly
    spool = FeedbackSpool(tmp_path / "spool", max_bytes=3 * item)
    results = [spool.add(data, {"version": "1"}) for data in images]
    kept = results.count("spooled")
    assert kept in (2, 3) and results[:kept] == ["spooled"] * kept
    assert set(results[kept:]) == {"dropped_full"}, "the policy drops the newest images"
    assert spool.counters.dropped_full == len(images) - kept
    assert spool.bytes_used <= spool.max_bytes
    assert spool.add(images[0], {"version": "1"}) == "duplicate" and spool.counters.duplicates == 1
    assert sorted(spool.items()) == sorted(sha(d) for d in images[:kept])
    meta = json.loads((spool.folder / f"{sha(images[0])}.json").read_text())
    assert meta["sha256"] == sha(images[0]) and meta["version"] == "1"


def test_uploads_twice_store_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "raw")
    spool = FeedbackSpool(tmp_path / "spool")
    data = noise_jpeg(1)
    spool.add(data, {"version": "1"})
    assert Uploader(spool, store).drain() == 1 and spool.items() == [] and spool.bytes_used == 0
    assert store.list("feedback") == [f"feedback/{sha(data)}.jpg", f"feedback/{sha(data)}.json"]
    stored = store.path(f"feedback/{sha(data)}.json").stat().st_mtime_ns
    spool.add(data, {"version": "2"})  # the same image seen again later (spool emptied meanwhile)
    assert Uploader(spool, store).drain() == 1
    assert spool.counters.uploaded == 1 and spool.counters.already_in_store == 1
    assert store.path(f"feedback/{sha(data)}.json").stat().st_mtime_ns == stored, "stored twice"
    assert store.get(f"feedback/{sha(data)}.jpg") == data


def unreachable_store(tmp_path: Path) -> LocalStore:
    """A folder store whose root is a file: every write fails, like a store that is down."""
    blocker = tmp_path / "raw"
    blocker.write_text("not a folder")
    return LocalStore(blocker)


def spooled_shas(spool: FeedbackSpool) -> set[str]:
    return set(spool.items())


def test_spool_full_while_the_store_is_down_then_everything_uploads(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    channel.publish(rel, "1")
    store = unreachable_store(tmp_path)
    runtime = make_runtime(channel, tmp_path / "state", feedback=store, spool_max_bytes=120_000)
    runtime.start(background=False)
    assert runtime.agent.check_once() and runtime.uploader is not None
    answers = []
    with serving(runtime) as server, Prober(server) as prober:
        for i in range(12):
            status, doc = predict(server, noise_jpeg(100 + i))
            answers.append(doc["feedback"]["spool"])
            assert status == 200
        with pytest.raises(OSError):
            runtime.uploader.drain()
    prober.assert_uninterrupted()
    assert "dropped_full" in answers and "spooled" in answers, answers
    counters = runtime.spool.describe()
    assert counters["dropped_full"] >= answers.count("dropped_full") and counters["bytes"] <= 120_000
    waiting = spooled_shas(runtime.spool)
    assert len(waiting) == counters["spooled"] >= answers.count("spooled")
    # the store comes back: everything spooled is uploaded, nothing lost
    Path(store.root).unlink()
    runtime.uploader.drain()
    stored = {k.split("/")[1].split(".")[0] for k in store.list("feedback")}
    assert waiting <= stored and runtime.spool.items() == []
    meta = json.loads(store.get(f"feedback/{sorted(waiting)[0]}.json") or b"{}")
    assert meta["version"] == "1" and meta["device_id"] == "test-device" and meta["reason"]


def test_restart_with_a_full_spool_loses_nothing(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    state = tmp_path / "state"
    config: dict[str, Any] = {"spool_max_bytes": 30_000}
    first = make_runtime(channel, state, feedback=unreachable_store(tmp_path), **config)
    first.start(background=False)
    assert first.agent.check_once()
    for i in range(10):
        first.predict(noise_jpeg(200 + i))
    assert first.spool.counters.dropped_full > 0
    before = spooled_shas(first.spool)
    used = first.spool.bytes_used
    # a crash in the middle of spooling one more image left an image without metadata
    (state / "spool" / ("f" * 64 + ".jpg")).write_bytes(noise_jpeg(999))
    first.stop()

    store = LocalStore(tmp_path / "raw-up")
    second = make_runtime(channel, state, feedback=store, **config)
    second.start(background=False)
    assert spooled_shas(second.spool) == before and second.spool.bytes_used == used
    assert not (state / "spool" / ("f" * 64 + ".jpg")).exists(), "debris of the interrupted write stayed"
    assert second.predict(noise_jpeg(300))["feedback"]["spool"] == "dropped_full"  # still full
    assert second.uploader is not None and second.uploader.drain() == len(before)
    assert {k.split("/")[1].split(".")[0] for k in store.list("feedback")} == before
    assert second.predict(noise_jpeg(300))["feedback"]["spool"] == "spooled"  # room again


@pytest.mark.s3
def test_upload_to_s3_store_once(s3_bucket: tuple[Any, str], s3_server: Any, tmp_path: Path) -> None:
    client, bucket = s3_bucket
    store = S3Store(f"s3://{bucket}/raw", endpoint_url=s3_server.endpoint_url)
    spool = FeedbackSpool(tmp_path / "spool")
    images = [noise_jpeg(i) for i in range(3)]
    for data in images:
        spool.add(data, {"version": "1"})
    assert Uploader(spool, store).drain() == 3
    spool.add(images[0], {"version": "1"})
    assert Uploader(spool, store).drain() == 1 and spool.counters.already_in_store == 1
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"raw/feedback/{sha(d)}.{ext}" for d in images for ext in ("jpg", "json"))
    body = client.get_object(Bucket=bucket, Key=f"raw/feedback/{sha(images[1])}.jpg")["Body"].read()
    assert body == images[1]
