"""Artifact types of the deployment pipeline (plain data, no ZenML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from visionloop.training.types import Metrics

Stage = Literal["staging", "production"]


class Check(BaseModel):
    """One gate or staging check: what was measured against which limit."""

    name: str
    passed: bool
    value: float | str | None = None
    limit: float | str | None = None
    detail: str = ""


class PromotionDecision(BaseModel):
    """The gate's verdict on a candidate, with candidate and production measured by the
    same code on the same test split, and the reasons."""

    model_name: str
    candidate_version: str
    production_version: str | None = None
    dataset_version_id: str
    test_images: int
    candidate: Metrics
    production: Metrics | None = None
    checks: list[Check] = Field(default_factory=list)
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    decided_at: str

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


class StagingReport(BaseModel):
    """Checks of the staged version, run on the copy the edge runtime pulled from the
    channel. ``skipped`` when the gate rejected the candidate (nothing was staged)."""

    model_name: str
    version: str
    skipped: bool = False
    channel: str = ""
    manifest_sha256: str = ""
    size_bytes: int = 0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    map50: float | None = None
    checks: list[Check] = Field(default_factory=list)
    passed: bool = False
    reasons: list[str] = Field(default_factory=list)


class PromotionOutcome(BaseModel):
    """Where the candidate ended: rejected, waiting at staging, or in production."""

    model_name: str
    version: str
    stage: Literal["rejected", "staging", "production"]
    waiting_for_approval: bool = False
    production_version: str | None = None
    archived_version: str | None = None
    channel: str = ""
    pointers: dict[str, str] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
