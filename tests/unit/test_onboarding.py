"""``run.py init``'s inspection and derived settings on three generated sets that differ in
image size, object size and layout; each written configuration loads as a valid one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.factories import split_detection_set, square_image
from visionloop.config import load_config
from visionloop.data.profile import profile_source, suggest_group_pattern
from visionloop.data.sources import LocalSource
from visionloop.onboarding import derive, render_yaml


def flat_set(root: Path, n: int, size: tuple[int, int], side: tuple[float, float], name: str) -> Path:
    """YOLO txt beside each image, no declared split; file names from ``name``."""
    rng = random.Random(7)
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("part\n")
    for i in range(n):
        img, lines = square_image(rng, size[0], size[1], side)
        stem = name.format(i=i, photo=i // 4, crop=i % 4)
        img.save(root / f"{stem}.jpg", quality=90)
        (root / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return root


def written(tmp: Path, source: Path, name: str, budget_s: float = 1800) -> tuple[dict, object]:
    profile = profile_source(LocalSource(source))
    derived = derive(profile, name, "cpu", budget_s=budget_s)
    path = tmp / "configs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(render_yaml(derived, profile, path, str(path)))
    return {k: s.value for k, s in derived.settings.items()}, load_config(path)


def test_small_greyscale_like_set_with_train_and_val_keeps_them_and_trains_at_native_size(tmp_path):
    source = split_detection_set(tmp_path / "steel", {"train": 24, "val": 8}, size=(200, 200), seed=1)
    settings, config = written(tmp_path, source, "steel")
    assert settings["train.imgsz"] == 224  # 200 px rounded up to a multiple of 32, not 416-480
    assert settings["tune.space.imgsz"] == [224]
    assert settings["data.split.mode"] == "source"
    assert settings["train.batch"] == 16 and 10 <= settings["train.epochs"] <= 100
    assert config.train.imgsz == 224 and config.data.split.mode == "source"  # type: ignore[attr-defined]
    assert config.data.format == "yolo" and config.data.class_names == ["square"]  # type: ignore[attr-defined]
    assert "data.group_pattern" not in settings


def test_large_images_with_large_boxes_are_capped_at_640_and_split_here(tmp_path):
    source = flat_set(tmp_path / "pcb", 12, (960, 720), (0.2, 0.3), "board_{i:02d}x")
    settings, config = written(tmp_path, source, "pcb", budget_s=60)
    assert settings["train.imgsz"] == 640
    assert settings["data.split.mode"] == "auto"
    assert settings["train.batch"] == 8
    # a CPU budget of one minute bounds the epochs (each about 2 + 8 * 0.19 * (640/480)^2 s)
    assert 3 <= settings["train.epochs"] <= 15
    assert config.train.epochs == settings["train.epochs"]  # type: ignore[attr-defined]


def test_tiny_objects_in_large_crops_of_one_photo_get_more_pixels_and_a_group_pattern(tmp_path):
    source = flat_set(tmp_path / "tags", 16, (1600, 1200), (0.006, 0.01), "photo{photo:02d}-cropped-{crop}")
    settings, config = written(tmp_path, source, "tags")
    profile = profile_source(LocalSource(source))
    assert profile.small_share > 0.9 and profile.long_side.median == 1600
    assert settings["train.imgsz"] == 1280  # small objects: not squeezed to 640
    assert settings["data.group_pattern"] == r"^(?P<group>.+?)-cropped-"
    assert profile.groups == 4 and profile.grouped_share == 1.0
    assert config.data.group_pattern == r"^(?P<group>.+?)-cropped-"  # type: ignore[attr-defined]


def test_the_profile_counts_what_the_source_holds(tmp_path):
    source = split_detection_set(tmp_path / "s", {"train": 6, "test": 3}, size=(96, 64), seed=4)
    (source / "images" / "train" / "extra.jpg").write_bytes(
        (source / "images" / "train" / "train_000.jpg").read_bytes()[::-1]
    )  # not an image: counted as unreadable, unlabeled
    profile = profile_source(LocalSource(source))
    assert profile.images == 10 and profile.labeled == 9 and profile.unlabeled == 1
    assert profile.unreadable == ["images/train/extra.jpg"]
    assert profile.declared_splits == {"test": 3, "train": 6}
    assert profile.width.median == 96 and profile.height.median == 64
    lines = [
        ln for t in (source / "labels").rglob("*.txt") for ln in t.read_text().splitlines() if ln.strip()
    ]
    assert profile.boxes_per_class == {"square": len(lines)}
    assert profile.images_per_class == {"square": 9}


def test_group_patterns_are_suggested_only_when_they_group_without_lumping():
    assert suggest_group_pattern([f"img_{i:03d}.jpg" for i in range(40)]) == (None, {})
    pattern, sizes = suggest_group_pattern([f"cam{c}_frame_{f}.png" for c in range(8) for f in range(5)])
    assert pattern is not None and len(sizes) == 8 and set(sizes.values()) == {5}


def test_a_source_without_labels_is_refused_with_the_reason(tmp_path):
    (tmp_path / "raw").mkdir()
    rng = random.Random(0)
    for i in range(3):
        square_image(rng, 64, 64)[0].save(tmp_path / "raw" / f"{i}.jpg")
    profile = profile_source(LocalSource(tmp_path / "raw"))
    with pytest.raises(ValueError, match="no labelled image"):
        derive(profile, "raw")
