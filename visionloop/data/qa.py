"""Data QA: named rules that accept an image or quarantine it with a reason.

Every candidate ends in exactly one place: an accepted ``ImageRecord`` or a
``QuarantineEntry`` naming the rule and the reason, so ``in = accepted + quarantined``.

Policies (see ``QAConfig``):
- Modes: RGB and L (8-bit grey) are kept as they are. Palette, alpha (RGBA, LA, PA),
  CMYK, YCbCr and 1-bit images are converted to RGB (alpha is dropped, not blended)
  and stored as PNG when ``mode_policy="convert"``, quarantined when ``"reject"``.
  16-bit and float images (I;16, I, F) are always quarantined: mapping them to 8 bits
  is a choice the data owner has to make.
- EXIF orientation: with ``exif_policy="apply"`` the pixels are turned upright and the
  boxes (assumed to be drawn on the stored, unrotated pixel grid) get the same
  transform; the result is stored as PNG without the tag. ``"reject"`` quarantines.
- Boxes may overshoot the image by ``box_tolerance`` of its side and are clipped;
  further out they are quarantined, as are NaN/infinite and degenerate boxes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import math
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from visionloop.data.blobstore import BlobIndex, BlobStore
from visionloop.data.facts_cache import FactsCache
from visionloop.data.importers.common import file_ext
from visionloop.data.sources import DataSource, within_root
from visionloop.data.split import cross_split_copies, split_leakage
from visionloop.data.types import (
    Box,
    Candidate,
    ImageRecord,
    LabelStatus,
    QuarantineEntry,
    QuarantineReport,
    make_box,
    make_record,
)

RULES: dict[str, str] = {
    "path_escapes_root": "the path leaves the data root (../, absolute, or a symlink out)",
    "missing_file": "a label names an image that is not in the source",
    "unreadable": "the file cannot be read",
    "too_large": "the file is larger than max_file_bytes",
    "zero_bytes": "the file is empty",
    "not_an_image": "the content is not an image, whatever the extension says",
    "decompression_bomb": "width x height exceeds max_pixels",
    "truncated": "the image data ends early",
    "undecodable": "the image cannot be decoded",
    "too_small": "the shorter side is below min_side",
    "unsupported_mode": "a pixel mode that is rejected (16-bit, float, or any non-RGB/L "
    "mode under mode_policy=reject)",
    "exif_orientation": "an EXIF orientation other than 1 under exif_policy=reject",
    "bad_label": "the label entry could not be parsed",
    "unknown_class": "a class id or name not in the data set's class list",
    "box_nan": "a box coordinate is NaN or infinite",
    "box_out_of_bounds": "a box lies outside the image beyond box_tolerance",
    "box_degenerate": "a box has (near) zero or negative width or height",
    "conflicting_duplicate": "the same image bytes appear more than once with different labels",
    "duplicate": "the same image bytes with the same labels appeared earlier; kept once",
}

# Candidates whose cache entries are looked up in one query. A batch is held until it is
# checked, so a larger one costs in garbage collection what it saves in queries: at 256,
# a re-run of 10,000 images spent 70 ms collecting (its candidates outlived the young
# generation), at 64 under 30 ms, with the queries' time unchanged.
PREFETCH = 64
KEEP_MODES = frozenset({"RGB", "L"})
NEVER_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "GIF": ".gif",
}
# Only these decoders ever see untrusted bytes: anything else is "not an image", whatever
# other Pillow plugins a library (ultralytics registers a HEIF opener) has added.
FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")  # JPEG also opens MPO files
Image.init()  # registers every bundled plugin, so that FORMATS can name them


def pillow_open(data: bytes) -> Image.Image:
    """``PIL.Image.open`` as Pillow ships it, restricted to ``FORMATS``. ultralytics
    replaces ``Image.open`` process-wide with a wrapper that, on bytes it cannot
    identify, tries to install and import a HEIF plugin; QA must not do that."""
    patches = sys.modules.get("ultralytics.utils.patches")
    opener = getattr(patches, "_image_open", Image.open) if patches is not None else Image.open
    image: Image.Image = opener(io.BytesIO(data), formats=FORMATS)
    return image


@dataclass(frozen=True)
class QAConfig:
    min_side: int = 32
    max_pixels: int = 40_000_000
    max_file_bytes: int = 64 * 2**20
    mode_policy: Literal["convert", "reject"] = "convert"
    exif_policy: Literal["apply", "reject"] = "apply"
    box_tolerance: float = 0.01
    min_box_px: float = 1.0


def _file_key(cand: Candidate) -> str | None:
    """The facts cache's key of a listing entry: URI, size and change stamp."""
    return f"{cand.source_uri}|{cand.size}|{cand.stamp}" if cand.stamp else None


class Rejected(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule, self.reason = rule, reason
        self.sha256: str | None = None


def decode_facts(data: bytes, max_pixels: int) -> dict[str, Any]:
    """Open and fully decode ``data``; return format, mode, raw size and EXIF
    orientation, or the rule and reason that reject it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = pillow_open(data)
            facts: dict[str, Any] = {
                "format": img.format,
                "mode": img.mode,
                "width": img.width,
                "height": img.height,
            }
            if img.width * img.height > max_pixels:
                return {**facts, "decoded": False}
            facts["orientation"] = int(img.getexif().get(0x0112, 1) or 1)
            img.load()
    except UnidentifiedImageError:
        return {"rule": "not_an_image", "reason": "no image format recognises these bytes"}
    except Image.DecompressionBombError as exc:
        return {"rule": "decompression_bomb", "reason": str(exc)}
    except OSError as exc:
        rule = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        return {"rule": rule, "reason": str(exc)}
    except Exception as exc:  # Pillow plugins raise ValueError, SyntaxError, ...
        return {"rule": "undecodable", "reason": f"{type(exc).__name__}: {exc}"}
    return {**facts, "decoded": True}


def exif_transform_box(box: Box, orientation: int, width: int, height: int) -> Box:
    """Map an xyxy pixel box on the raw grid (``width`` x ``height``) to the upright
    grid that ``ImageOps.exif_transpose`` produces for ``orientation``."""
    w, h = width, height
    maps = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (w - x, y),
        3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (h - y, x),
        7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (y, w - x),
    }
    f = maps[orientation]
    (ax, ay), (bx, by) = f(box.x1, box.y1), f(box.x2, box.y2)
    return Box(class_id=box.class_id, x1=min(ax, bx), y1=min(ay, by), x2=max(ax, bx), y2=max(ay, by))


def check_boxes(
    cand: Candidate, width: int, height: int, n_classes: int, config: QAConfig
) -> tuple[list[Box], int]:
    """Boxes of ``cand`` in xyxy pixels of the raw grid, clipped within tolerance;
    raises ``Rejected``. Returns the boxes and how many were clipped."""
    labels = cand.labels
    if labels.problems:
        raise Rejected("bad_label", "; ".join(labels.problems))
    if labels.unknown_classes:
        raise Rejected(
            "unknown_class",
            f"class(es) {sorted(set(labels.unknown_classes))} not in the {n_classes} known classes",
        )
    normalized = labels.normalized
    tx, ty = width * config.box_tolerance, height * config.box_tolerance
    min_px, fw, fh = config.min_box_px, float(width), float(height)
    isfinite = math.isfinite
    out, clipped = [], 0
    for b in labels.boxes:
        x1, y1, x2, y2 = b.x1, b.y1, b.x2, b.y2
        if normalized:
            x1, y1, x2, y2 = x1 * width, y1 * height, x2 * width, y2 * height
        if not (isfinite(x1) and isfinite(y1) and isfinite(x2) and isfinite(y2)):
            raise Rejected("box_nan", f"box {b.as_tuple()} has a NaN or infinite coordinate")
        if x2 - x1 < min_px or y2 - y1 < min_px:
            raise Rejected("box_degenerate", f"box {b.as_tuple()} is {x2 - x1:.2f} x {y2 - y1:.2f} px")
        if x1 >= 0.0 and y1 >= 0.0 and x2 <= fw and y2 <= fh:  # inside: nothing to clip
            # frozen, so a record can share the importer's box
            out.append(make_box(b.class_id, x1, y1, x2, y2) if normalized else b)
            continue
        if x1 < -tx or y1 < -ty or x2 > width + tx or y2 > height + ty:
            raise Rejected(
                "box_out_of_bounds",
                f"box {(x1, y1, x2, y2)} px lies outside the {width}x{height} image",
            )
        cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(fw, x2), min(fh, y2)
        clipped += 1
        if cx2 - cx1 < min_px or cy2 - cy1 < min_px:
            raise Rejected("box_degenerate", f"box {b.as_tuple()} is empty after clipping")
        out.append(make_box(b.class_id, cx1, cy1, cx2, cy2))
    return out, clipped


def transformed_bytes(data: bytes, orientation: int) -> tuple[bytes, Image.Image]:
    """Upright RGB/L pixels of ``data``, re-encoded losslessly as PNG."""
    img = pillow_open(data)
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode not in KEEP_MODES:
        img = img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue(), img


class QARunner:
    """Runs the rules over candidates, writing every read image to ``blobs``."""

    def __init__(
        self,
        source: DataSource,
        blobs: BlobStore,
        class_names: list[str],
        config: QAConfig | None = None,
        cache: FactsCache | None = None,
    ) -> None:
        self.source, self.blobs, self.class_names = source, blobs, class_names
        self.config = config or QAConfig()
        self.cache = cache or FactsCache(None)
        self.stats: dict[str, Any] = {"converted": defaultdict(int), "exif_rotated": 0, "clipped": 0}
        self.decoded = 0
        self.stored = BlobIndex(blobs)

    def _read(self, cand: Candidate) -> bytes:
        local = self.source.local_path(cand.path)
        try:
            if local is not None:
                with open(local, "rb") as fh:
                    return fh.read()
            return self.source.read_bytes(cand.path)
        except OSError as exc:
            raise Rejected("unreadable", str(exc)) from exc

    def _facts(self, cand: Candidate, file_key: str | None) -> tuple[str, dict[str, Any], bytes | None]:
        """(sha256, facts, bytes or None when everything came from the cache).

        A listing entry seen before (``file_key``: same URI, size and change stamp) whose
        blob is still stored is not read at all; otherwise the bytes are read and hashed,
        and decoded only when no facts are cached for that hash."""
        known = self.cache.lookup(file_key) if file_key else None
        if known is not None:
            sha, facts = known
            if facts is not None and self._complete(facts) and self.stored.has(sha, facts.get("ext", "")):
                return sha, facts, None
        ext = file_ext(cand.path)
        data = self._read(cand)
        if not data:
            raise Rejected("zero_bytes", "the file is empty (0 bytes)")
        sha = hashlib.sha256(data).hexdigest()
        cached = self.cache.get(sha)
        if cached is not None and self._complete(cached):
            facts = cached
        else:
            facts = decode_facts(data, self.config.max_pixels)
            self.decoded += 1
            facts["ext"] = EXTENSIONS.get(facts.get("format") or "", ext or ".bin")
        self.cache.put(sha, facts, file_key)
        self.stored.put(sha, facts["ext"], data)
        return sha, facts, data

    def _complete(self, facts: dict[str, Any]) -> bool:
        """Whether cached facts answer every rule under this config (facts of an image
        over an earlier, lower pixel limit were taken without decoding it)."""
        return bool(facts.get("decoded") or facts.get("rule")) or not self._needs_decode(facts)

    def _needs_decode(self, facts: dict[str, Any]) -> bool:
        return "width" in facts and facts["width"] * facts["height"] <= self.config.max_pixels

    def check(self, cand: Candidate, file_key: str | None = None) -> ImageRecord:
        """The record of ``cand``, or ``Rejected``. ``file_key``: ``_file_key(cand)``, when
        the caller has it already."""
        cfg = self.config
        if not within_root(cand.path) or not (cand.plain or self.source.contains(cand.path)):
            raise Rejected("path_escapes_root", f"{cand.path!r} is outside {self.source.uri}")
        if not cand.exists:
            raise Rejected("missing_file", f"labels name {cand.path!r} but no such file is in the source")
        if cand.size > cfg.max_file_bytes:
            raise Rejected("too_large", f"{cand.size} bytes > max_file_bytes {cfg.max_file_bytes}")
        sha, facts, data = self._facts(cand, file_key or _file_key(cand))
        try:
            return self._check_decoded(cand, sha, facts, data)
        except Rejected as rej:
            rej.sha256 = sha
            raise

    def _check_decoded(
        self, cand: Candidate, sha: str, facts: dict[str, Any], data: bytes | None
    ) -> ImageRecord:
        cfg = self.config
        if facts.get("rule"):
            raise Rejected(facts["rule"], facts["reason"])
        w, h, mode = facts["width"], facts["height"], facts["mode"]
        if w * h > cfg.max_pixels:
            raise Rejected("decompression_bomb", f"{w}x{h} = {w * h} pixels > max_pixels {cfg.max_pixels}")
        if min(w, h) < cfg.min_side:
            raise Rejected("too_small", f"{w}x{h} px; the shorter side is below min_side {cfg.min_side}")
        if mode in NEVER_MODES or (mode not in KEEP_MODES and cfg.mode_policy == "reject"):
            raise Rejected("unsupported_mode", f"mode {mode} (policy: {cfg.mode_policy})")
        orientation = facts.get("orientation", 1)
        if orientation not in range(1, 9):
            orientation = 1
        if orientation != 1 and cfg.exif_policy == "reject":
            raise Rejected("exif_orientation", f"EXIF orientation {orientation} (policy: reject)")
        boxes, clipped = check_boxes(cand, w, h, len(self.class_names), cfg)
        record = make_record(
            sha256=sha,
            path=cand.path,
            width=w,
            height=h,
            status=cand.labels.status,
            boxes=boxes,
            source=cand.source_uri,
            group=cand.group,
            split=cand.split if cand.labels.status == LabelStatus.LABELED else None,
            ext=facts["ext"],
            labeling_job=cand.labels.labeling_job,
        )
        if orientation == 1 and mode in KEEP_MODES:
            self.stats["clipped"] += clipped
            return record
        return self._transform(record, facts, data, orientation, mode, clipped)

    def _transform(
        self,
        record: ImageRecord,
        facts: dict[str, Any],
        data: bytes | None,
        orientation: int,
        mode: str,
        clipped: int,
    ) -> ImageRecord:
        key = f"derived-{orientation}"
        derived = facts.get(key)
        if derived is None or not self.stored.has(derived["sha256"], ".png"):
            if data is None:
                data = self.blobs.get(record.sha256, record.ext)
            out, img = transformed_bytes(data, orientation)
            derived = {"sha256": hashlib.sha256(out).hexdigest(), "width": img.width, "height": img.height}
            self.stored.put(derived["sha256"], ".png", out)
            self.cache.put(record.sha256, {**facts, key: derived})
        boxes = [exif_transform_box(b, orientation, record.width, record.height) for b in record.boxes]
        if orientation != 1:
            self.stats["exif_rotated"] += 1
        if mode not in KEEP_MODES:
            self.stats["converted"][mode] += 1
        self.stats["clipped"] += clipped
        return dataclasses.replace(
            record,
            sha256=derived["sha256"],
            source_sha256=record.sha256,
            ext=".png",
            width=derived["width"],
            height=derived["height"],
            boxes=boxes,
            converted_from=mode if mode not in KEEP_MODES else None,
        )

    def run(
        self, candidates: Iterable[Candidate], source_label: str
    ) -> tuple[list[ImageRecord], QuarantineReport]:
        records: list[ImageRecord] = []
        entries: list[QuarantineEntry] = []
        total = 0
        self.stored = BlobIndex(self.blobs)  # what the store holds now, not at a previous run
        stream = iter(candidates)
        while batch := list(itertools.islice(stream, PREFETCH)):
            keys = [_file_key(cand) for cand in batch]
            self.cache.prefetch([key for key in keys if key])
            for cand, key in zip(batch, keys, strict=True):
                total += 1
                try:
                    records.append(self.check(cand, key))
                except Rejected as rej:
                    entries.append(
                        QuarantineEntry(
                            path=cand.path,
                            source_uri=cand.source_uri,
                            rule=rej.rule,
                            reason=rej.reason,
                            sha256=rej.sha256,
                        )
                    )
        self.cache.commit()
        copies = cross_split_copies(records)
        records, dup_entries = resolve_duplicates(records)
        entries.extend(dup_entries)
        report = QuarantineReport(
            source=source_label,
            total=total,
            accepted=len(records),
            entries=entries,
            converted=dict(self.stats["converted"]),
            exif_rotated=self.stats["exif_rotated"],
            boxes_clipped=self.stats["clipped"],
            leakage=split_leakage(records, copies),
        )
        report.check_reconciles()
        return records, report


def _label_key(record: ImageRecord) -> tuple[Any, ...]:
    boxes = sorted(
        (b.class_id, round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)) for b in record.boxes
    )
    return (record.status.value, tuple(boxes))


def _entry(record: ImageRecord, rule: str, reason: str) -> QuarantineEntry:
    return QuarantineEntry(
        path=record.path, source_uri=record.source, rule=rule, reason=reason, sha256=record.sha256
    )


def resolve_duplicates(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[QuarantineEntry]]:
    """One record per stored image. Copies with the same labels (or unlabeled copies of
    a labelled image) are kept once; labelled copies that disagree are all quarantined.

    Finds the repeated hashes by sorting (two lists of references, no per-record
    objects), so a data set without duplicates is returned as it came."""
    by_hash = sorted(records, key=attrgetter("sha256"))
    repeated = {
        by_hash[i].sha256 for i in range(1, len(by_hash)) if by_hash[i].sha256 == by_hash[i - 1].sha256
    }
    del by_hash
    if not repeated:
        return records, []
    by_sha: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        if record.sha256 in repeated:
            by_sha[record.sha256].append(record)
    kept: list[ImageRecord] = []
    entries: list[QuarantineEntry] = []
    for record in records:
        copies = by_sha.pop(record.sha256, None) if record.sha256 in repeated else [record]
        if copies is None:  # a later copy, handled with the first
            continue
        labeled = [r for r in copies if r.status == LabelStatus.LABELED]
        keys = {_label_key(r) for r in labeled}
        if len(keys) > 1:
            paths = ", ".join(r.path for r in copies)
            reason = f"the same bytes appear as {paths} with {len(keys)} different label sets"
            entries.extend(_entry(r, "conflicting_duplicate", reason) for r in copies)
            continue
        keep = labeled[0] if labeled else copies[0]
        kept.append(keep)
        reason = f"same bytes as {keep.path} and no conflicting labels; kept once"
        entries.extend(_entry(r, "duplicate", reason) for r in copies if r is not keep)
    return kept, entries
