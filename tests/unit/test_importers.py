"""The four label importers, driven through ``ingest`` on generated folders."""

from __future__ import annotations

import ast
import csv
import json
import posixpath
from pathlib import Path

import pytest

from tests.conftest import METAL_TAGS
from tests.factories import GT_HEADER, gt_csv_row, image_bytes, write_image
from visionloop.data.importers import LabelFormatError
from visionloop.data.importers.common import PathResolver
from visionloop.data.ingest import Ingested, Scan, ingest
from visionloop.data.sources import LocalSource
from visionloop.data.types import Box, Candidate, LabelStatus

LABELED, UNLABELED = LabelStatus.LABELED, LabelStatus.UNLABELED


def by_path(ingested: Ingested) -> dict[str, Candidate]:
    out = {c.path: c for c in ingested.candidates}
    assert len(out) == len(ingested.candidates), "a path became two candidates"
    return out


def boxes(cand: Candidate) -> list[tuple[int, float, float, float, float]]:
    return [b.as_tuple() for b in cand.labels.boxes]


def assert_boxes(cand: Candidate, expected: list[tuple[int, float, float, float, float]]) -> None:
    got = boxes(cand)
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g[0] == e[0], got
        assert g[1:] == pytest.approx(e[1:], abs=1e-9), got


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- layouts


def yolo_ultralytics(root: Path) -> Path:
    for i, name in enumerate("abcde"):
        write_image(root / "images" / "train" / f"{name}.jpg", seed=i)
    write(root / "labels/train/a.txt", "0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.1 0.3\n")
    write(root / "labels/train/b.txt", "")  # checked, nothing there
    # c has no txt: unlabeled
    write(root / "labels/train/d.txt", "0 0.5 0.5\nx 0.1 0.1 0.1 0.1\n1 0.5 0.5 0.5 0.5\n")
    write(root / "labels/train/e.txt", "5 0.5 0.5 0.2 0.2\n")  # class 5 of 2 names
    write(root / "data.yaml", "path: .\ntrain: images/train\nnames:\n  0: scratch\n  1: dent\n")
    return root


def yolo_flat(root: Path) -> Path:
    write_image(root / "a.jpg", seed=1)
    write_image(root / "b.jpg", seed=2)
    write(root / "a.txt", "0 0.4 0.6 0.2 0.2\n")
    write(root / "classes.txt", "scratch\ndent\n")
    return root


def coco_layout(root: Path) -> Path:
    for i, name in enumerate(("a", "b", "c")):
        write_image(root / "imgs" / f"{name}.jpg", seed=10 + i)
    data = {
        "images": [
            {"id": 11, "file_name": "imgs/a.jpg", "width": 96, "height": 64},
            {"id": 12, "file_name": "imgs/b.jpg", "width": 96, "height": 64},
            {"id": 13, "file_name": "../outside.jpg", "width": 96, "height": 64},
            {"id": 14, "file_name": "imgs/gone.jpg", "width": 96, "height": 64},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [10, 5, 20, 30]},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [50.5, 8, 4, 6]},
            {"id": 3, "image_id": 13, "category_id": 7, "bbox": [1, 1, 2, 2]},
        ],
        # non-contiguous ids, in an order that differs from the config's class order
        "categories": [{"id": 3, "name": "dent"}, {"id": 7, "name": "scratch"}],
    }
    write(root / "annotations" / "instances.json", json.dumps(data))
    return root


def rect(region_id: str, label: str, x: float, y: float, w: float, h: float) -> dict:
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 96,
        "original_height": 64,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }


def label_studio_layout(root: Path) -> Path:
    for i, name in enumerate("abcde"):
        write_image(root / "imgs" / f"{name}.jpg", seed=20 + i)
    url = "/data/local-files/?d=imgs/{}.jpg"
    tasks = [
        {
            "id": 1,
            "project": 4,
            "data": {"image": url.format("a")},
            "annotations": [
                {
                    "id": 101,
                    "updated_at": "2024-01-01T10:00:00Z",
                    "result": [rect("r1", "scratch", 10, 20, 30, 40)],
                },
                {
                    "id": 102,
                    "updated_at": "2024-02-01T10:00:00Z",
                    "result": [rect("r2", "dent", 50, 50, 10, 20)],
                },
                {
                    "id": 103,
                    "updated_at": "2024-03-01T10:00:00Z",
                    "was_cancelled": True,
                    "result": [rect("r3", "scratch", 1, 1, 1, 1)],
                },
            ],
        },
        {
            "id": 2,
            "data": {"image": url.format("b")},
            "annotations": [
                {"id": 201, "was_cancelled": True, "result": [rect("r4", "scratch", 5, 5, 5, 5)]}
            ],
        },
        {"id": 3, "data": {"image": url.format("c")}, "annotations": [{"id": 301, "result": []}]},
        {
            "id": 4,
            "data": {"image": url.format("d")},
            "annotations": [{"id": 401, "result": [rect("r5", "rust", 0, 0, 50, 50)]}],
        },
    ]
    write(root / "export.json", json.dumps(tasks))
    return root


def ground_truth_layout(root: Path) -> Path:
    write_image(root / "batch" / "bad" / "a.jpg", seed=30)
    write_image(root / "batch" / "good" / "b.jpg", seed=31)
    write_image(root / "batch" / "bad" / "c.jpg", seed=32)
    rows = gt_csv_row("a.jpg", [(0, 10, 20, 30, 15), (0, 60.5, 2, 8, 9)]) + gt_csv_row("b.jpg", [])
    write(root / "labels.csv", GT_HEADER + rows)
    return root


# --------------------------------------------------------------------------- YOLO


def test_yolo_ultralytics_layout(tmp_path: Path) -> None:
    out = ingest(LocalSource(yolo_ultralytics(tmp_path)), "yolo", None, None)
    assert out.format == "yolo"
    assert out.class_names == ["scratch", "dent"]  # from data.yaml
    cands = by_path(out)
    assert sorted(cands) == [f"images/train/{n}.jpg" for n in "abcde"]
    assert all(c.exists for c in cands.values())

    a = cands["images/train/a.jpg"]
    assert a.labels.status == LABELED and a.labels.normalized is True
    assert a.labels.problems == [] and a.labels.unknown_classes == []
    assert_boxes(a, [(0, 0.4, 0.3, 0.6, 0.7), (1, 0.2, 0.6, 0.3, 0.9)])

    b = cands["images/train/b.jpg"]
    assert b.labels.status == LABELED and b.labels.boxes == [] and b.labels.problems == []

    c = cands["images/train/c.jpg"]
    assert c.labels.status == UNLABELED and c.labels.boxes == []

    d = cands["images/train/d.jpg"]
    assert len(d.labels.problems) == 2, d.labels.problems
    assert all("labels/train/d.txt" in p for p in d.labels.problems)
    assert ":1:" in d.labels.problems[0] and ":2:" in d.labels.problems[1]
    assert_boxes(d, [(1, 0.25, 0.25, 0.75, 0.75)])  # the good line still counts

    e = cands["images/train/e.jpg"]
    assert e.labels.unknown_classes == ["5"]
    assert_boxes(e, [(5, 0.4, 0.4, 0.6, 0.6)])

    # label and meta files are consumed, not reported as ignored or candidates
    assert out.ignored == []


def test_yolo_flat_layout_with_classes_txt(tmp_path: Path) -> None:
    out = ingest(LocalSource(yolo_flat(tmp_path)), "yolo", None, None)
    assert out.class_names == ["scratch", "dent"]
    cands = by_path(out)
    assert sorted(cands) == ["a.jpg", "b.jpg"]
    assert cands["a.jpg"].labels.status == LABELED
    assert cands["a.jpg"].labels.normalized is True
    assert_boxes(cands["a.jpg"], [(0, 0.3, 0.5, 0.5, 0.7)])
    assert cands["b.jpg"].labels.status == UNLABELED
    assert out.ignored == []


def test_yolo_config_class_names_override_and_missing_names(tmp_path: Path) -> None:
    root = yolo_flat(tmp_path)
    out = ingest(LocalSource(root), "yolo", ["dent"], None)
    assert out.class_names == ["dent"]
    (root / "classes.txt").unlink()
    with pytest.raises(LabelFormatError, match="class_names"):
        ingest(LocalSource(root), "yolo", None, None)


# --------------------------------------------------------------------------- COCO


def test_coco_categories_boxes_and_statuses(tmp_path: Path) -> None:
    out = ingest(LocalSource(coco_layout(tmp_path)), "coco", ["scratch", "dent"], None)
    assert out.format == "coco"
    cands = by_path(out)

    a = cands["imgs/a.jpg"]
    assert a.labels.status == LABELED and a.labels.normalized is False
    assert a.labels.unknown_classes == [] and a.labels.problems == []
    # category 7 "scratch" -> 0, category 3 "dent" -> 1; xywh pixels -> xyxy
    assert_boxes(a, [(0, 10, 5, 30, 35), (1, 50.5, 8, 54.5, 14)])

    b = cands["imgs/b.jpg"]
    assert b.labels.status == LABELED and b.labels.boxes == []

    c = cands["imgs/c.jpg"]
    assert c.labels.status == UNLABELED
    assert c.exists

    escaping = [c for c in out.candidates if ".." in c.path.split("/")]
    assert [c.path for c in escaping] == ["../outside.jpg"]
    assert escaping[0].exists is False

    gone = cands["imgs/gone.jpg"]
    assert gone.exists is False and gone.size == 0
    assert gone.labels.status == LABELED

    assert len(out.candidates) == 5
    assert out.ignored == []  # the json was consumed


def test_coco_class_names_default_to_category_id_order(tmp_path: Path) -> None:
    out = ingest(LocalSource(coco_layout(tmp_path)), "coco", None, None)
    assert out.class_names == ["dent", "scratch"]  # ids 3, 7
    assert [b[0] for b in boxes(by_path(out)["imgs/a.jpg"])] == [1, 0]


def test_coco_unknown_category_name(tmp_path: Path) -> None:
    out = ingest(LocalSource(coco_layout(tmp_path)), "coco", ["scratch"], None)
    a = by_path(out)["imgs/a.jpg"]
    assert a.labels.unknown_classes == ["dent"]
    assert [b[0] for b in boxes(a)] == [0, -1]


# --------------------------------------------------------------------------- Label Studio


def test_label_studio_export(tmp_path: Path) -> None:
    out = ingest(LocalSource(label_studio_layout(tmp_path)), "label-studio", ["scratch", "dent"], None)
    assert out.format == "label-studio"
    cands = by_path(out)
    assert sorted(cands) == [f"imgs/{n}.jpg" for n in "abcde"]  # local-files URL -> relative path
    assert all(c.exists for c in cands.values())

    a = cands["imgs/a.jpg"]
    assert a.labels.status == LABELED and a.labels.normalized is True
    # annotation 102 is the newest not cancelled (103 is newer but cancelled)
    assert_boxes(a, [(1, 0.5, 0.5, 0.6, 0.7)])
    assert a.labels.labeling_job == "label-studio:4"

    assert cands["imgs/b.jpg"].labels.status == UNLABELED  # cancelled only

    c = cands["imgs/c.jpg"]
    assert c.labels.status == LABELED and c.labels.boxes == []

    d = cands["imgs/d.jpg"]
    assert d.labels.unknown_classes == ["rust"]
    assert_boxes(d, [(-1, 0.0, 0.0, 0.5, 0.5)])

    assert cands["imgs/e.jpg"].labels.status == UNLABELED  # no task
    assert out.ignored == []


def test_label_studio_percent_to_normalised_first_annotation(tmp_path: Path) -> None:
    root = tmp_path
    write_image(root / "imgs" / "a.jpg")
    task = {
        "id": 9,
        "data": {"image": "/data/local-files/?d=imgs/a.jpg"},
        "annotations": [{"id": 1, "result": [rect("r", "scratch", 10, 20, 30, 40)]}],
    }
    write(root / "tasks.json", json.dumps([task]))
    out = ingest(LocalSource(root), "label-studio", None, None)
    assert out.class_names == ["scratch"]  # from the labels used
    assert_boxes(by_path(out)["imgs/a.jpg"], [(0, 0.1, 0.2, 0.4, 0.6)])


# --------------------------------------------------------------------------- Ground Truth CSV


def test_ground_truth_csv(tmp_path: Path) -> None:
    out = ingest(LocalSource(ground_truth_layout(tmp_path)), "ground-truth", ["scratch"], None)
    assert out.format == "ground-truth" and out.class_names == ["scratch"]
    cands = by_path(out)
    assert sorted(cands) == ["batch/bad/a.jpg", "batch/bad/c.jpg", "batch/good/b.jpg"]

    a = cands["batch/bad/a.jpg"]  # s3://${bucket}/assets/a.jpg -> the local file by name
    assert a.exists and a.labels.status == LABELED and a.labels.normalized is False
    assert_boxes(a, [(0, 10, 20, 40, 35), (0, 60.5, 2, 68.5, 11)])
    assert a.labels.labeling_job == "job-1"
    assert a.labels.problems == [] and a.labels.unknown_classes == []

    b = cands["batch/good/b.jpg"]
    assert b.labels.status == LABELED and b.labels.boxes == []

    assert cands["batch/bad/c.jpg"].labels.status == UNLABELED
    assert out.ignored == []


def test_ground_truth_bad_rows_become_problems(tmp_path: Path) -> None:
    root = ground_truth_layout(tmp_path)
    write_image(root / "batch" / "bad" / "d.jpg", seed=33)
    rows = gt_csv_row("a.jpg", [(3, 1, 1, 5, 5)])
    rows += "s3://b/assets/c.jpg,96,64,3,\"[{'class_id': 0}]\",1.0,job-1,APPROVED\n"
    rows += "s3://b/assets/d.jpg,96,64,3,not a list,1.0,job-1,APPROVED\n"
    write(root / "labels.csv", GT_HEADER + rows)
    cands = by_path(ingest(LocalSource(root), "ground-truth", ["scratch"], None))
    assert cands["batch/bad/a.jpg"].labels.unknown_classes == ["3"]
    c = cands["batch/bad/c.jpg"]
    assert c.labels.boxes == [] and len(c.labels.problems) == 1 and "labels.csv:3" in c.labels.problems[0]
    d = cands["batch/bad/d.jpg"]
    assert len(d.labels.problems) == 1 and "labels.csv:4" in d.labels.problems[0]


@pytest.mark.parametrize("fmt", ["ground-truth", "auto"])
def test_ground_truth_without_class_names_is_a_helpful_error(tmp_path: Path, fmt: str) -> None:
    source = LocalSource(ground_truth_layout(tmp_path))
    with pytest.raises(LabelFormatError) as err:
        ingest(source, fmt, None, None)
    message = str(err.value)
    assert "class_names" in message and "Ground Truth" in message


# --------------------------------------------------------------------------- detection, errors, listing

LAYOUTS = {
    "yolo-ultralytics": (yolo_ultralytics, "yolo", None),
    "yolo-flat": (yolo_flat, "yolo", None),
    "coco": (coco_layout, "coco", None),
    "label-studio": (label_studio_layout, "label-studio", None),
    "ground-truth": (ground_truth_layout, "ground-truth", ["scratch"]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_auto_detection_matches_explicit_format(tmp_path: Path, layout: str) -> None:
    build, expected, class_names = LAYOUTS[layout]
    source = LocalSource(build(tmp_path))
    auto = ingest(source, "auto", class_names, None)
    assert auto.format == expected
    explicit = ingest(source, expected, class_names, None)
    assert auto.model_dump() == explicit.model_dump()
    assert any(c.labels.status == LABELED for c in auto.candidates)


def test_folder_of_images_only_is_format_none(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    out = ingest(LocalSource(tmp_path), "auto", None, None)
    assert out.format == "none"
    assert [(c.path, c.labels.status) for c in out.candidates] == [("a.jpg", UNLABELED)]


def test_unknown_format_is_rejected(tmp_path: Path) -> None:
    source = LocalSource(yolo_flat(tmp_path))
    with pytest.raises(LabelFormatError, match="unknown label format 'pascal-voc'"):
        ingest(source, "pascal-voc", None, None)


def test_explicit_format_without_its_files_is_an_error(tmp_path: Path) -> None:
    source = LocalSource(yolo_flat(tmp_path))
    for fmt in ("coco", "label-studio", "ground-truth"):
        with pytest.raises(LabelFormatError, match="no "):
            ingest(source, fmt, ["scratch"], None)


def test_unknown_extensions_sniffed_and_non_images_ignored(tmp_path: Path) -> None:
    write_image(tmp_path / "bad" / "x.jpg_0", seed=1)
    (tmp_path / "bad" / "y.jpg_1").write_bytes(image_bytes(seed=2, fmt="PNG"))
    write(tmp_path / "bad" / "notes.dat", "just some text, not an image at all\n")
    write(tmp_path / "README.md", "# data\n")
    write(tmp_path / "LICENSE", "MIT-0 licence text that is long enough\n")
    write(tmp_path / ".hidden.jpg", "hidden files are skipped")
    out = ingest(LocalSource(tmp_path), "auto", None, None)
    assert sorted(c.path for c in out.candidates) == ["bad/x.jpg_0", "bad/y.jpg_1"]
    assert sorted(i.path for i in out.ignored) == ["LICENSE", "README.md", "bad/notes.dat"]
    assert all(i.reason for i in out.ignored)


def test_group_pattern(tmp_path: Path) -> None:
    for name in ("tag1-cropped-left.jpg", "tag1-cropped-right.jpg", "tag2-cropped-left.jpg", "other.jpg"):
        write_image(tmp_path / "imgs" / name)
    out = ingest(LocalSource(tmp_path), "none", None, r"^(?P<group>.+?)-cropped-")
    groups = {c.path: c.group for c in out.candidates}
    assert groups == {
        "imgs/other.jpg": "imgs/other",
        "imgs/tag1-cropped-left.jpg": "tag1",
        "imgs/tag1-cropped-right.jpg": "tag1",
        "imgs/tag2-cropped-left.jpg": "tag2",
    }


# --------------------------------------------------------------------------- the bundled real data set


def test_metal_tags_ground_truth() -> None:
    out = ingest(LocalSource(METAL_TAGS), "ground-truth", ["scratch"], r"^(?P<group>.+?)-cropped-")
    cands = by_path(out)
    labeled = [c for c in out.candidates if c.labels.status == LABELED]
    unlabeled = [c for c in out.candidates if c.labels.status == UNLABELED]
    assert len(out.candidates) == 199
    assert len(labeled) == 185
    assert len(unlabeled) == 14
    assert all(c.path.startswith("bad/") for c in unlabeled)
    assert len({c.group for c in out.candidates}) == 59
    assert all(c.exists for c in out.candidates)
    assert all(c.labels.problems == [] and c.labels.unknown_classes == [] for c in out.candidates)
    assert sorted(i.path for i in out.ignored) == ["LICENSE", "README.md"]

    with open(METAL_TAGS / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_name = {posixpath.basename(p): c for p, c in cands.items()}
    empty = {posixpath.basename(r["source_ref"]) for r in rows if r["annotations"].strip() == "[]"}
    assert len(empty) == 3
    labeled_no_boxes = {posixpath.basename(c.path) for c in labeled if not c.labels.boxes}
    assert labeled_no_boxes == empty
    assert all(by_name[n].labels.status == LABELED for n in empty)

    # the first row, converted from left/top/width/height to xyxy pixels
    first = rows[0]
    cand = by_name[posixpath.basename(first["source_ref"])]
    expected = [
        Box(
            class_id=a["class_id"],
            x1=a["left"],
            y1=a["top"],
            x2=a["left"] + a["width"],
            y2=a["top"] + a["height"],
        )
        for a in ast.literal_eval(first["annotations"])
    ]
    assert cand.labels.boxes == expected
    assert cand.labels.labeling_job == first["labeling_job"]


def test_scan_streams_the_candidates_that_ingest_lists(tmp_path: Path) -> None:
    """``Scan.candidates`` (what the benchmark streams into QA) yields exactly what
    ``ingest`` lists, in the same order, label-only and missing entries included, and
    lets go of the listing and the labels as it goes."""
    root = ground_truth_layout(tmp_path)
    write(root / "notes.md", "not an image\n")
    rows = gt_csv_row("a.jpg", [(0, 1, 1, 5, 5)]) + gt_csv_row("z.jpg", []) + gt_csv_row("b.jpg", [])
    write(root / "labels.csv", GT_HEADER + rows)
    listed = ingest(LocalSource(root), "ground-truth", ["scratch"], None)
    scan = Scan(LocalSource(root), "ground-truth", ["scratch"], None)
    streamed = list(scan.candidates())
    assert [c.model_dump() for c in streamed] == [c.model_dump() for c in listed.candidates]
    assert [(posixpath.basename(c.path), c.exists, c.labels.status) for c in streamed] == [
        ("a.jpg", True, LABELED),
        ("c.jpg", True, UNLABELED),
        ("b.jpg", True, LABELED),
        ("z.jpg", False, LABELED),  # a label entry with no file comes last
    ]
    assert [i.path for i in scan.ignored] == ["notes.md"] and scan.ignored == listed.ignored
    assert list(scan.candidates()) == []  # one pass: nothing is kept for a second


# --------------------------------------------------------------------------- resolving references


def suffix_index_resolve(paths: list[str], ref: str) -> str:
    """The resolver as it was first written (an index of every path suffix): the one
    ``PathResolver`` must agree with."""
    by_suffix: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")
        for i in range(len(parts)):
            by_suffix.setdefault("/".join(parts[i:]), []).append(path)
    ref = ref.replace("\\", "/")
    if ref in paths:
        return ref
    if ".." in ref.split("/"):
        return ref
    parts = [p for p in ref.split("/") if p]
    for i in range(len(parts)):
        hits = by_suffix.get("/".join(parts[i:]), [])
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1 and i == len(parts) - 1:
            break
    return posixpath.normpath(ref.lstrip("/"))


def test_path_resolver_agrees_with_a_suffix_index() -> None:
    paths = ["2021/good/a.jpg", "2022/good/a.jpg", "2021/bad/b.jpg", "c.jpg", "x/c.jpg", "x/y/d.jpg"]
    refs = [
        "2021/good/a.jpg",
        "s3://bucket/assets/2021/good/a.jpg",
        "s3://bucket/good/a.jpg",  # two listed files end with good/a.jpg: unresolved
        "a.jpg",
        "s3://bucket/b.jpg",
        "C:\\data\\2022\\good\\a.jpg",
        "../2021/bad/b.jpg",
        "/c.jpg",  # ambiguous by name, normalised to a listed path
        "c.jpg",
        "other/x/c.jpg",
        "/data/y/d.jpg",
        "z/y/d.jpg/",
        "nothing.jpg",
        "",
        "/",
    ]
    resolver = PathResolver(paths)
    for ref in refs:
        expected = suffix_index_resolve(paths, ref)
        path, index = resolver.locate(ref)
        assert path == expected == resolver.resolve(ref), ref
        assert index == (paths.index(path) if path in paths else None), ref


# --------------------------------------------------------------------------- Ground Truth CSV, read row by row


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_ground_truth_csv_line_endings_blank_lines_and_multiline_cells(
    tmp_path: Path, newline: str, bom: bool
) -> None:
    for i, name in enumerate("abcd"):
        write_image(tmp_path / "imgs" / f"{name}.jpg", seed=40 + i)
    header = "source_ref,annotations,labeling_job,batch"
    rows = [
        header,
        # a quoted cell over two lines
        f"s3://b/a.jpg,\"[{{'class_id': 0, 'top': 2, 'left': 1,{newline} 'height': 4, 'width': 3}}]\",job-1,x",
        "",  # a blank line: skipped, not counted
        's3://b/b.jpg,"not a list",job-2,y',
        "s3://b/gone.jpg,[],job-1,z",
        "s3://b/c.jpg,\"[{'class_id': 0, 'top': 1, 'left': 1, 'height': 1, 'width': 1}]\",job-1,w",
        "s3://b/c.jpg,[],job-3,v",  # a later row for the same image replaces the earlier one
        "s3://b/d.jpg",  # no annotations cell: checked and clean, as an empty one
    ]
    raw = newline.join(rows) + newline
    (tmp_path / "labels.csv").write_bytes(("\ufeff" if bom else "").encode() + raw.encode())
    out = ingest(LocalSource(tmp_path), "auto", ["scratch"], None, group_field="batch")
    assert out.format == "ground-truth"
    cands = by_path(out)
    a = cands["imgs/a.jpg"]
    assert_boxes(a, [(0, 1, 2, 4, 6)])
    assert (a.labels.labeling_job, a.group, a.labels.problems) == ("job-1", "x", [])
    b = cands["imgs/b.jpg"]
    assert len(b.labels.problems) == 1
    assert b.labels.problems[0].startswith("labels.csv:3: cannot parse annotations")
    assert (b.labels.labeling_job, b.group) == ("job-2", "y")
    c = cands["imgs/c.jpg"]
    assert (c.labels.status, c.labels.boxes, c.labels.labeling_job, c.group) == (LABELED, [], "job-3", "v")
    d = cands["imgs/d.jpg"]
    assert (d.labels.status, d.labels.boxes, d.labels.labeling_job, d.group) == (LABELED, [], None, "imgs/d")
    gone = cands["s3:/b/gone.jpg"]
    assert gone.exists is False and gone.labels.labeling_job == "job-1" and gone.group == "z"
    # rows of one labeling job share one string
    assert a.labels.labeling_job is gone.labels.labeling_job


def test_ground_truth_csv_is_read_from_a_private_copy(tmp_path: Path) -> None:
    """Labels of listed images are made as QA reaches them, from a copy taken when the
    source was scanned: rewriting the CSV in place meanwhile changes nothing."""
    root = ground_truth_layout(tmp_path)
    scan = Scan(LocalSource(root), "ground-truth", ["scratch"], None)
    with open(root / "labels.csv", "r+") as fh:
        fh.write(GT_HEADER + gt_csv_row("b.jpg", [(0, 1, 1, 5, 5)]) + gt_csv_row("a.jpg", []))
    cands = {c.path: c for c in scan.candidates()}
    assert_boxes(cands["batch/bad/a.jpg"], [(0, 10, 20, 40, 35), (0, 60.5, 2, 68.5, 11)])
    assert cands["batch/good/b.jpg"].labels.boxes == []


def test_unreadable_ground_truth_csv_names_the_file(tmp_path: Path) -> None:
    root = ground_truth_layout(tmp_path)
    source = LocalSource(root)
    cases = {
        b"\xff\xfe not utf-8": "not UTF-8",
        ("s3://b/a.jpg," + "x" * 200_000 + "\n").encode(): "labels.csv:3: not a readable CSV",
    }
    for bad_row, problem in cases.items():
        (root / "labels.csv").write_bytes(GT_HEADER.encode() + gt_csv_row("b.jpg", []).encode() + bad_row)
        with pytest.raises(LabelFormatError) as err:
            ingest(source, "ground-truth", ["scratch"], None)
        assert "labels.csv" in str(err.value) and problem in str(err.value)
    (root / "labels.csv").write_text("image,width,source_ref,annotations\nonly,two\n")
    with pytest.raises(LabelFormatError, match=r"labels.csv:2: no source_ref \(the row has 2 of 4 columns\)"):
        ingest(source, "ground-truth", ["scratch"], None)
