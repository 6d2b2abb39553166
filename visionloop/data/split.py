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

import dataclasses
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
    return {g: stratum for g, (stratum, _) in _groups(records).items()}


def _groups(records: list[ImageRecord]) -> dict[str, tuple[str, int]]:
    """(stratum, labelled images) of each labelled group; one small entry per group."""
    class_counts = Counter(b.class_id for r in records if r.labeled for b in r.boxes)

    def rarity(c: int) -> tuple[int, int]:
        return (class_counts[c], c)

    rarest: dict[str, int] = {}  # -1: no box yet
    sizes: Counter[str] = Counter()
    for r in records:
        if not r.labeled:
            continue
        sizes[r.group] += 1
        best = rarest.get(r.group, -1)
        for b in r.boxes:
            if best < 0 or rarity(b.class_id) < rarity(best):
                best = b.class_id
        rarest[r.group] = best
    return {g: (f"class-{c}" if c >= 0 else "background", sizes[g]) for g, c in rarest.items()}


def split_assignment(records: list[ImageRecord], config: SplitConfig | None = None) -> dict[str, str]:
    """The split of each labelled group."""
    config = config or SplitConfig()
    groups = _groups(records)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, (stratum, _) in groups.items():
        by_stratum[stratum].append(group)
    splits = [s for s in SPLITS if config.fraction(s) > 0]
    assignment: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum.pop(stratum), key=lambda g: _order_key(config.seed, g))
        total = sum(groups[g][1] for g in members)
        have = dict.fromkeys(SPLITS, 0)
        for group in members:
            best = _furthest_below(splits, config, total, have)
            assignment[group] = best
            have[best] += groups[group][1]
    return assignment


def _furthest_below(splits: list[str], config: SplitConfig, total: int, have: dict[str, int]) -> str:
    """The split furthest below its target share of ``total`` (ties: the first)."""
    return max(splits, key=lambda s: config.fraction(s) * total - have[s])


def set_splits(records: list[ImageRecord], config: SplitConfig | None = None) -> list[ImageRecord]:
    """Set ``split`` on ``records`` in place (None for unlabeled ones) and return them:
    no copy of the data set is made."""
    assignment = split_assignment(records, config)
    for r in records:
        r.split = assignment[r.group] if r.labeled else None
    return records


def assign_splits(records: list[ImageRecord], config: SplitConfig | None = None) -> list[ImageRecord]:
    """Copies of ``records`` with ``split`` set (labelled) or None (unlabeled)."""
    return set_splits([dataclasses.replace(r) for r in records], config)
