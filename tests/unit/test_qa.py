"""QA rules on real files: every bad input is quarantined with the right reason."""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import bad_inputs
from tests.factories import image_bytes
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.facts_cache import FactsCache
from visionloop.data.importers.common import file_ext
from visionloop.data.ingest import Scan, ingest
from visionloop.data.qa import RULES, QAConfig, QARunner, exif_transform_box
from visionloop.data.sources import LocalSource
from visionloop.data.types import (
    Box,
    Candidate,
    ImageRecord,
    Labels,
    LabelStatus,
    QuarantineReport,
)


def run_qa(root: Path, blobs: Path, **config: object):
    source = LocalSource(root)
    found = ingest(source, "yolo")
    runner = QARunner(
        source, LocalBlobStore(blobs), found.class_names, QAConfig(**{**bad_inputs.QA_SETTINGS, **config})
    )
    return found, runner, *runner.run(found.candidates, source.uri)


@pytest.fixture()
def bad_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "raw"
    return root, bad_inputs.build(root, tmp_path / "outside")


def test_each_bad_input_gets_its_rule_and_counts_reconcile(bad_folder, tmp_path):
    root, expected = bad_folder
    found, _runner, records, report = run_qa(root, tmp_path / "blobs")
    got = {r.path: "accepted" for r in records}
    got.update({e.path: e.rule for e in report.entries})
    assert got == expected
    assert report.total == len(expected) == report.accepted + report.quarantined
    assert all(e.rule in RULES and e.reason for e in report.entries)
    assert [i.path for i in report.ignored] == [] and "notes.md" in [i.path for i in found.ignored]


def test_conversions_and_exif_are_recorded(bad_folder, tmp_path):
    root, _ = bad_folder
    _, _, records, report = run_qa(root, tmp_path / "blobs")
    by_path = {r.path: r for r in records}
    assert report.converted == {"CMYK": 1, "P": 1, "RGBA": 1}
    assert report.exif_rotated == 1
    for name, mode in [("cmyk.jpg", "CMYK"), ("palette.png", "P"), ("alpha.png", "RGBA")]:
        r = by_path[name]
        assert r.converted_from == mode and r.ext == ".png" and r.source_sha256 != r.sha256
        stored = Image.open(io.BytesIO((tmp_path / "blobs" / r.sha256[:2] / f"{r.sha256}.png").read_bytes()))
        assert stored.mode == "RGB"
    rotated = by_path["rotated.jpg"]
    assert (rotated.width, rotated.height) == (80, 120)  # orientation 6 turns 120x80 upright
    assert by_path["unlabeled.jpg"].status == LabelStatus.UNLABELED
    assert by_path["good_empty_label.jpg"].status == LabelStatus.LABELED
    assert by_path["good_empty_label.jpg"].boxes == []


def test_quarantined_bytes_are_kept_in_the_store(bad_folder, tmp_path):
    root, _ = bad_folder
    _, _, _, report = run_qa(root, tmp_path / "blobs")
    truncated = next(e for e in report.entries if e.rule == "truncated")
    assert truncated.sha256 is not None
    assert list((tmp_path / "blobs").glob(f"*/{truncated.sha256}.*"))


def test_reject_policies(bad_folder, tmp_path):
    root, _ = bad_folder
    _, _, records, report = run_qa(root, tmp_path / "blobs", mode_policy="reject", exif_policy="reject")
    rules = {e.path: e.rule for e in report.entries}
    assert rules["cmyk.jpg"] == rules["palette.png"] == rules["alpha.png"] == "unsupported_mode"
    assert rules["rotated.jpg"] == "exif_orientation"
    assert report.total == report.accepted + report.quarantined


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transform_moves_boxes_with_the_pixels(tmp_path, orientation):
    """Draw a white block at a known raw box, let QA turn the image upright, and find
    the block again in the stored pixels: it must be where the record's box says."""
    raw = Image.new("L", (120, 80), 0)
    raw.paste(255, (10, 20, 40, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    raw.save(buf, format="PNG", exif=exif)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.png").write_bytes(buf.getvalue())
    (tmp_path / "raw" / "a.txt").write_text(f"0 {25 / 120} {25 / 80} {30 / 120} {10 / 80}\n")
    (tmp_path / "raw" / "classes.txt").write_text("x\n")
    _, _, records, _ = run_qa(tmp_path / "raw", tmp_path / "blobs")
    (r,) = records
    stored = np.asarray(Image.open(tmp_path / "blobs" / r.sha256[:2] / f"{r.sha256}{r.ext}"))
    ys, xs = np.nonzero(stored > 127)
    (b,) = r.boxes
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), abs=1)


def test_exif_transform_box_swaps_sides():
    box = exif_transform_box(Box(class_id=0, x1=10, y1=20, x2=40, y2=30), 6, 120, 80)
    assert (box.x1, box.y1, box.x2, box.y2) == (50, 10, 60, 40)


def test_missing_and_escaping_candidates(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "ok.jpg").write_bytes(image_bytes())
    source = LocalSource(tmp_path / "raw")
    labels = Labels(boxes=[Box(class_id=0, x1=1, y1=1, x2=20, y2=20)])
    cands = [
        Candidate(path="ok.jpg", source_uri="x", size=10, labels=labels, group="g1"),
        Candidate(path="gone.jpg", source_uri="y", exists=False, labels=labels, group="g2"),
        Candidate(path="../etc/passwd", source_uri="z", labels=labels, group="g3"),
        Candidate(path="/abs.jpg", source_uri="w", labels=labels, group="g4"),
    ]
    records, report = QARunner(source, LocalBlobStore(tmp_path / "b"), ["x"]).run(cands, source.uri)
    assert [r.path for r in records] == ["ok.jpg"]
    assert {e.path: e.rule for e in report.entries} == {
        "gone.jpg": "missing_file",
        "../etc/passwd": "path_escapes_root",
        "/abs.jpg": "path_escapes_root",
    }


def test_small_overshoot_is_clipped_not_quarantined(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jpg").write_bytes(image_bytes(size=(100, 100)))
    (tmp_path / "raw" / "a.txt").write_text("0 0.9 0.5 0.205 0.2\n")  # x2 = 1.0025: 0.25 px out
    (tmp_path / "raw" / "classes.txt").write_text("x\n")
    _, _, records, report = run_qa(tmp_path / "raw", tmp_path / "blobs")
    assert records[0].boxes[0].x2 == 100.0 and report.boxes_clipped == 1


def test_facts_cache_skips_decoding_unchanged_files(bad_folder, tmp_path):
    root, _ = bad_folder
    cache_path = tmp_path / "facts.sqlite"
    source = LocalSource(root)
    found = ingest(source, "yolo")

    def once() -> tuple[int, list[str]]:
        runner = QARunner(
            source,
            LocalBlobStore(tmp_path / "blobs"),
            found.class_names,
            QAConfig(**bad_inputs.QA_SETTINGS),
            FactsCache(cache_path),
        )
        records, report = runner.run(found.candidates, source.uri)
        runner.cache.close()
        return runner.decoded, sorted([r.sha256 for r in records] + [e.rule for e in report.entries])

    first_decoded, first = once()
    second_decoded, second = once()
    assert first_decoded > 20 and second_decoded == 0
    assert first == second


def test_not_an_image_even_after_ultralytics_patched_pillow():
    """ultralytics replaces PIL.Image.open with a wrapper that reaches for a HEIF plugin
    on unidentified bytes; QA must still call such bytes not_an_image."""
    from visionloop.data.qa import decode_facts
    from visionloop.training.offline import prepare_ultralytics

    prepare_ultralytics()
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)

    assert decode_facts(b"plain text, not pixels\n" * 8, 10**8)["rule"] == "not_an_image"


def test_a_blob_is_a_copy_that_a_later_edit_of_the_source_cannot_change(tmp_path):
    (tmp_path / "raw").mkdir()
    src = tmp_path / "raw" / "a.jpg"
    src.write_bytes(image_bytes())
    source = LocalSource(tmp_path / "raw")
    cand = Candidate(path="a.jpg", source_uri=str(src), size=src.stat().st_size, group="g")
    (record,), _ = QARunner(source, LocalBlobStore(tmp_path / "blobs"), ["x"]).run([cand], source.uri)
    blob = tmp_path / "blobs" / record.sha256[:2] / f"{record.sha256}.jpg"
    original = blob.read_bytes()
    with open(src, "r+b") as fh:  # edited in place: same inode
        fh.write(b"\x00" * 64)
    assert blob.read_bytes() == original and hashlib.sha256(original).hexdigest() == record.sha256
    assert src.stat().st_nlink == 1
    assert sorted(p.name for p in blob.parent.iterdir()) == [blob.name]  # no temporary file left


def test_facts_cache_buffers_writes_that_lookups_already_see(tmp_path):
    cache = FactsCache(tmp_path / "facts.sqlite")
    facts = {"format": "JPEG", "mode": "RGB", "width": 4, "height": 3, "decoded": True, "ext": ".jpg"}
    cache.put("ab" * 32, facts, "file|1|1:2:3")
    assert cache.pending == 2  # nothing written to SQLite yet
    assert cache.lookup("file|1|1:2:3") == ("ab" * 32, {**facts, "v": FactsCache.VERSION})
    got = cache.get("ab" * 32)
    assert got is not None
    got["width"] = 99  # a caller's copy: changing it changes nothing cached
    cache.close()
    reopened = FactsCache(tmp_path / "facts.sqlite")
    assert reopened.lookup("file|1|1:2:3") == ("ab" * 32, {**facts, "v": FactsCache.VERSION})
    assert reopened.lookup("file|1|other") is None
    reopened.prefetch(["file|1|1:2:3", "file|1|other"])  # one query for a batch of entries
    assert reopened.lookup("file|1|1:2:3") == ("ab" * 32, {**facts, "v": FactsCache.VERSION})
    assert reopened.lookup("file|1|other") is None
    newer = {**facts, "derived-6": {"sha256": "cd" * 32, "width": 3, "height": 4}}
    reopened.put("ab" * 32, newer, "file|1|other")  # a write after the prefetch wins
    assert reopened.lookup("file|1|other") == ("ab" * 32, {**newer, "v": FactsCache.VERSION})
    assert reopened.lookup("file|1|1:2:3") == ("ab" * 32, {**newer, "v": FactsCache.VERSION})
    reopened.close()


def test_local_source_refuses_a_symlinked_folder_that_leaves_the_root(tmp_path):
    root, outside = tmp_path / "raw", tmp_path / "outside"
    (root / "plain").mkdir(parents=True)
    outside.mkdir()
    (root / "plain" / "a.jpg").write_bytes(b"x")
    (outside / "b.jpg").write_bytes(b"x")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "plain" / "back").symlink_to(root / "plain", target_is_directory=True)
    source = LocalSource(root)
    assert source.contains("plain/a.jpg") and source.contains("plain/./a.jpg")
    assert not source.contains("out/b.jpg")
    assert not source.contains("plain/../out/b.jpg")
    assert source.local_path("plain/back/a.jpg") == (root / "plain" / "a.jpg").resolve()
    assert not source.contains("out/b.jpg")  # asked again: a symlinked folder is never remembered


def rerun(root: Path, tmp_path: Path) -> tuple[QARunner, list[ImageRecord], QuarantineReport]:
    """One QA run over ``root`` (no labels) with the blob store and facts cache that
    every call with this ``tmp_path`` shares."""
    source = LocalSource(root)
    scan = Scan(source, "none")
    runner = QARunner(
        source, LocalBlobStore(tmp_path / "blobs"), [], cache=FactsCache(tmp_path / "facts.sqlite")
    )
    records, report = runner.run(scan.candidates(), source.uri)
    runner.cache.close()
    assert report.total == report.accepted + report.quarantined
    return runner, records, report


def three_images(root: Path) -> None:
    root.mkdir()
    for i in range(3):
        (root / f"{i}.jpg").write_bytes(image_bytes(seed=i))


def test_a_blob_removed_from_the_store_is_noticed_and_written_again(tmp_path):
    three_images(tmp_path / "raw")
    _, first, _ = rerun(tmp_path / "raw", tmp_path)
    blob = tmp_path / "blobs" / first[1].sha256[:2] / f"{first[1].sha256}.jpg"
    blob.unlink()
    shutil.rmtree(tmp_path / "blobs" / first[2].sha256[:2])  # a whole two-letter folder, too
    runner, second, _ = rerun(tmp_path / "raw", tmp_path)
    assert runner.decoded == 0  # read and hashed again; the facts still came from the cache
    assert [r.sha256 for r in second] == [r.sha256 for r in first]
    for r in second:
        stored = tmp_path / "blobs" / r.sha256[:2] / f"{r.sha256}.jpg"
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == r.sha256


def test_a_file_changed_in_place_is_hashed_and_checked_again(tmp_path):
    root = tmp_path / "raw"
    three_images(root)
    _, first, _ = rerun(root, tmp_path)
    small = image_bytes(seed=9, size=(20, 20))  # below min_side: the new bytes must be checked
    with open(root / "1.jpg", "r+b") as fh:  # same path, same inode, other bytes and size
        fh.truncate(0)
        fh.write(small)
    same_size = root / "2.jpg"
    st = same_size.stat()
    same_size.write_bytes(b"\x00" * st.st_size)  # same size: only the change time tells
    os.utime(same_size, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    runner, second, report = rerun(root, tmp_path)
    assert runner.decoded == 2
    assert [r.sha256 for r in second] == [first[0].sha256]
    rules = {e.path: (e.rule, e.sha256) for e in report.entries}
    assert rules == {
        "1.jpg": ("too_small", hashlib.sha256(small).hexdigest()),
        "2.jpg": ("not_an_image", hashlib.sha256(b"\x00" * st.st_size).hexdigest()),
    }


def test_listing_marks_symlinks_and_qa_resolves_those(tmp_path):
    """A listed file that is not a symlink is ``plain``: QA does not resolve its path.
    A symlink is resolved: accepted when it stays inside the root, quarantined when not."""
    root, outside = tmp_path / "raw", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / ".store").mkdir()
    outside.mkdir()
    (root / "sub" / "a.jpg").write_bytes(image_bytes(seed=1))
    (root / ".store" / "b.jpg").write_bytes(image_bytes(seed=2))  # hidden: not listed
    (outside / "c.jpg").write_bytes(image_bytes(seed=3))
    (root / "in.jpg").symlink_to(root / ".store" / "b.jpg")
    (root / "out.jpg").symlink_to(outside / "c.jpg")
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)  # not descended into
    assert {f.path: f.plain for f in LocalSource(root).list_files()} == {
        "in.jpg": False,
        "out.jpg": False,
        "sub/a.jpg": True,
    }
    _, records, report = rerun(root, tmp_path)
    assert sorted(r.path for r in records) == ["in.jpg", "sub/a.jpg"]
    assert {e.path: e.rule for e in report.entries} == {"out.jpg": "path_escapes_root"}


@pytest.mark.parametrize(
    "path", ["a.jpg", "d/b.JPEG", "d.x/c", ".hidden", "d/..jpg", "d/.a.jpg", "a.", "noext", "a/b.tar.gz", ""]
)
def test_file_ext_is_splitext(path):
    assert file_ext(path) == posixpath.splitext(path)[1].lower()
