"""Seeded, stratified, group-aware splitting.

All images of one capture group (e.g. the four crops of one photo) land in the same
split, so no photo is seen in training and again in test. Groups are stratified by the
rarest class they contain ("background" for groups with no boxes), and within each
stratum they are taken in an order fixed by a keyed hash of (seed, group), each one
going to the split that is furthest below its target share of that stratum's images.
The same groups and seed always give the same assignment. Unlabeled images get no
split (``None``): they wait to be labelled.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass

from visionloop.data.types import ImageRecord

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        fractions = (self.train, self.val, self.test)
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")

    def fraction(self, split: str) -> float:
        return float(getattr(self, split))


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()


def group_strata(records: list[ImageRecord]) -> dict[str, str]:
    """The stratum of each labelled group: its rarest class by box count over the
    data set, or ``background`` when none of its images has a box."""
    class_counts = Counter(b.class_id for r in records if r.labeled for b in r.boxes)
    classes_in: dict[str, set[int]] = defaultdict(set)
    for r in records:
        if r.labeled:
            classes_in[r.group].update(b.class_id for b in r.boxes)
    return {
        g: (f"class-{min(cs, key=lambda c: (class_counts[c], c))}" if cs else "background")
        for g, cs in classes_in.items()
    }


def assign_splits(records: list[ImageRecord], config: SplitConfig | None = None) -> list[ImageRecord]:
    """Copies of ``records`` with ``split`` set (labelled) or None (unlabeled)."""
    config = config or SplitConfig()
    strata = group_strata(records)
    sizes = Counter(r.group for r in records if r.labeled)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, stratum in strata.items():
        by_stratum[stratum].append(group)
    assignment: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        groups = sorted(by_stratum[stratum], key=lambda g: _order_key(config.seed, g))
        total = sum(sizes[g] for g in groups)
        have = dict.fromkeys(SPLITS, 0)
        for group in groups:

            def deficit(split: str) -> float:
                return config.fraction(split) * total - have[split]

            best = max((s for s in SPLITS if config.fraction(s) > 0), key=deficit)
            assignment[group] = best
            have[best] += sizes[group]
    return [r.model_copy(update={"split": assignment[r.group] if r.labeled else None}) for r in records]
