"""Seeded, stratified, group-aware splitting.

All images of one capture group (e.g. the four crops of one photo) land in the same
split, so no photo is seen in training and again in test. Groups are stratified by the
rarest class they contain ("background" for groups with no boxes), and within each
stratum they are taken in an order fixed by a keyed hash of (seed, group), each one
going to the split that is furthest below its target share of that stratum's images.
The same groups and seed always give the same assignment. Unlabeled images get no
split (``None``): they wait to be labelled.

A source may declare its own splits (a YOLO ``data.yaml``, ``train``/``val``/``test``
folders, one COCO file per split, a ``split`` column): QA sets them on the records, and
with ``mode`` ``source`` (the default when any is declared) they are kept as they are. A
split the source does not declare is carved out of its train split, group-aware, to the
configured share of the data set; labelled images with no declared split are split
among themselves. ``mode: auto`` ignores what the source declares.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from visionloop.data.types import CrossSplitCopy, ImageRecord, SplitLeakage, StraddlingGroup

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    mode: str | None = None  # "source", "auto", or None: source when the source declares splits

    def __post_init__(self) -> None:
        fractions = (self.train, self.val, self.test)
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
        if self.mode not in (None, "source", "auto"):
            raise ValueError(f"split mode must be 'source' or 'auto', got {self.mode!r}")

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


class SplitPlan(BaseModel):
    """How a data set version's splits were made (kept in its manifest). ``declared``:
    labelled images per split the source declared; ``carved``: images moved out of the
    declared train split into a split the source did not declare; ``assigned``: labelled
    images with no declared split, split among themselves."""

    mode: str  # "source" or "auto"
    declared: dict[str, int] = Field(default_factory=dict)
    carved: dict[str, int] = Field(default_factory=dict)
    assigned: dict[str, int] = Field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.mode == "auto":
            return [
                "splits made here (seeded, group-aware, stratified); the source declared none or mode is auto"
            ]
        out = [f"the source's splits kept: {self.declared}"]
        if self.carved:
            out.append(f"carved out of the source's train split, group-aware: {self.carved}")
        if self.assigned:
            out.append(f"images with no declared split, split among themselves: {self.assigned}")
        return out


class SplitModeError(ValueError):
    """``mode: source`` on a source that declares no split, or declares no train split."""


def resolve_splits(records: list[ImageRecord], config: SplitConfig | None = None) -> SplitPlan:
    """Set ``split`` on ``records`` in place by ``config.mode`` and say how.

    In ``source`` mode a record's declared split (already in ``split``) is kept; splits
    the source does not declare are carved from its train groups to their configured
    share of all labelled images; undeclared labelled records are split among themselves.
    """
    config = config or SplitConfig()
    labeled = [r for r in records if r.labeled]
    declared = Counter(r.split for r in labeled if r.split is not None)
    mode = config.mode or ("source" if declared else "auto")
    if mode == "auto":
        set_splits(records, config)
        return SplitPlan(mode="auto")
    if not declared:
        raise SplitModeError(
            "data.split.mode is 'source' but the source declares no split (no data.yaml "
            "train/val/test, no train/val/test folders, no split column); set mode: auto"
        )
    if "train" not in declared:
        raise SplitModeError(
            f"the source declares {dict(declared)} but no train split; declare one or set data.split.mode: auto"
        )
    for r in records:
        if not r.labeled:
            r.split = None
    undeclared = [r for r in labeled if r.split is None]
    train = [r for r in labeled if r.split == "train"]  # the declared train split
    assignment = split_assignment(undeclared, config)
    for r in undeclared:
        r.split = assignment[r.group]
    missing = [s for s in SPLITS if s not in declared and config.fraction(s) > 0]
    carved: Counter[str] = Counter()
    if missing:
        share = {s: config.fraction(s) * len(labeled) / max(1, len(train)) for s in missing}
        keep = 1.0 - sum(share.values())
        if keep <= 0:
            raise SplitModeError(
                f"the source's train split ({len(train)} images) is too small to carve {missing} "
                f"out of it at the configured shares; declare them or set data.split.mode: auto"
            )
        carve = SplitConfig(
            train=keep, val=share.get("val", 0.0), test=share.get("test", 0.0), seed=config.seed
        )
        moved = split_assignment(train, carve)
        for r in train:
            r.split = moved[r.group]
            if r.split != "train":
                carved[r.split] += 1
    return SplitPlan(
        mode="source",
        declared=dict(sorted(declared.items())),
        carved=dict(sorted(carved.items())),
        assigned=dict(sorted(Counter(str(r.split) for r in undeclared).items())),
    )


def split_summary(plan: SplitPlan | None, leakage: SplitLeakage | None) -> dict[str, Any]:
    """The run summary's ``splits`` entry: the plan and what straddles the declared splits."""
    out: dict[str, Any] = {"mode": plan.mode if plan else "auto"}
    if plan is not None and plan.mode == "source":
        out.update(declared=plan.declared, carved=plan.carved, assigned=plan.assigned)
    if leakage is not None:
        out["straddling_groups"] = leakage.straddling_groups
        out["identical_images"] = leakage.identical_images
        out["examples"] = [f"group {g.group}: {g.splits}" for g in leakage.group_examples[:3]] + [
            f"identical: {c.paths}" for c in leakage.identical_examples[:3]
        ]
    return out


EXAMPLES = 20


def cross_split_copies(records: list[ImageRecord]) -> list[CrossSplitCopy]:
    """Identical image bytes that the source declares in more than one split (before
    ``resolve_duplicates`` keeps one copy)."""
    by_sha: dict[str, dict[str, str]] = defaultdict(dict)
    for r in records:
        if r.split is not None:
            by_sha[r.sha256][r.path] = r.split
    return [
        CrossSplitCopy(sha256=sha, paths=dict(sorted(paths.items())))
        for sha, paths in sorted(by_sha.items())
        if len(set(paths.values())) > 1
    ]


def split_leakage(records: list[ImageRecord], copies: list[CrossSplitCopy]) -> SplitLeakage | None:
    """The capture groups and identical images that straddle the declared splits of the
    accepted records; None when the source declares no split."""
    labeled = [r for r in records if r.labeled]
    declared = Counter(r.split for r in labeled if r.split is not None)
    if not declared and not copies:
        return None
    per_group: dict[str, Counter[str]] = defaultdict(Counter)
    paths: dict[str, list[str]] = defaultdict(list)
    for r in labeled:
        if r.split is not None:
            per_group[r.group][r.split] += 1
            if len(paths[r.group]) < 4:
                paths[r.group].append(r.path)
    straddling = sorted(g for g, splits in per_group.items() if len(splits) > 1)
    return SplitLeakage(
        declared=dict(sorted(declared.items())),
        undeclared=sum(1 for r in labeled if r.split is None),
        straddling_groups=len(straddling),
        identical_images=len(copies),
        group_examples=[
            StraddlingGroup(group=g, splits=dict(sorted(per_group[g].items())), paths=paths[g])
            for g in straddling[:EXAMPLES]
        ],
        identical_examples=copies[:EXAMPLES],
    )
