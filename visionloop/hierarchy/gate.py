"""The gates of a hierarchy: each node's own, and the bundle's (which also checks that
the pinned versions fit together)."""

from __future__ import annotations

from edge_runtime.bundle import fit_problems
from visionloop.deploy.types import Check
from visionloop.hierarchy.metrics import ClassifierMetrics, HierarchyMetrics
from visionloop.hierarchy.release import hierarchy_section
from visionloop.hierarchy.spec import BundleGate, NodeGate
from visionloop.hierarchy.types import BundleManifest, DetectorRoute


def node_checks(
    candidate: ClassifierMetrics,
    production: ClassifierMetrics | None,
    gate: NodeGate,
    production_version: str | None,
) -> list[Check]:
    """Top-1 and per-class recall floors, and no regression of top-1 against the node's
    production version (every check evaluated, so a report names every failure)."""
    checks = [
        Check(
            name="top-1 threshold",
            passed=candidate.top1 >= gate.min_top1,
            value=candidate.top1,
            limit=gate.min_top1,
        )
    ]
    for name, values in sorted(candidate.per_class.items()):
        recall = float(values.get("recall", 0.0))
        checks.append(
            Check(
                name=f"recall of class {name}",
                passed=recall >= gate.min_class_recall,
                value=round(recall, 4),
                limit=gate.min_class_recall,
            )
        )
    if production is not None:
        floor = production.top1 - gate.max_regression
        checks.append(
            Check(
                name="top-1 against production",
                passed=candidate.top1 >= floor - 1e-9,
                value=candidate.top1,
                limit=round(floor, 4),
                detail=f"production version {production_version}: {production.top1:.4f}, "
                f"allowed regression {gate.max_regression}",
            )
        )
    return checks


def fit_checks(manifest: BundleManifest) -> list[Check]:
    """One check per rule of ``edge_runtime.bundle.fit_problems``, the rule a device
    applies again when it loads the bundle."""
    problems = fit_problems(hierarchy_section(manifest))
    if not problems:
        return [
            Check(
                name="versions fit together",
                passed=True,
                value="; ".join(f"{k} {v}" for k, v in manifest.pins().items()),
                detail="the parent's classes are the declared groups, each child's the classes of its "
                "group, each child of its group's task",
            )
        ]
    return [
        Check(name="versions fit together", passed=False, value="no", limit="yes", detail=p) for p in problems
    ]


def bundle_checks(
    manifest: BundleManifest,
    candidate: HierarchyMetrics,
    production: HierarchyMetrics | None,
    gate: BundleGate,
    production_version: str | None,
    detectors: dict[str, DetectorRoute] | None = None,
    production_detectors: dict[str, DetectorRoute] | None = None,
) -> list[Check]:
    """The fit, each node's own gate, the end-to-end thresholds on the classifier
    groups' images (when there are any) and on each detector group's mAP50 through
    the bundle, and no regression of either against the production bundle."""
    checks = fit_checks(manifest)
    if gate.require_node_gates:
        for key, node in manifest.nodes.items():
            checks.append(
                Check(
                    name=f"node {key}'s own gate",
                    passed=node.gate_passed,
                    value=f"{node.model}:{node.version}",
                    detail="; ".join(node.gate_reasons),
                )
            )
    pairs: list[tuple[str, float, float | None]] = []
    if candidate.images:
        checks += [
            Check(
                name="end-to-end top-1 threshold",
                passed=candidate.top1 >= gate.min_top1,
                value=candidate.top1,
                limit=gate.min_top1,
            ),
            Check(
                name="hierarchical F threshold",
                passed=candidate.hierarchical_f >= gate.min_hierarchical_f,
                value=candidate.hierarchical_f,
                limit=gate.min_hierarchical_f,
            ),
        ]
        if production is not None and production.images:
            pairs += [
                ("end-to-end top-1", candidate.top1, production.top1),
                ("hierarchical F", candidate.hierarchical_f, production.hierarchical_f),
            ]
    for group, route in sorted((detectors or {}).items()):
        checks.append(
            Check(
                name=f"detector {group}: mAP50 through the bundle threshold",
                passed=route.map50 >= gate.min_detector_map50,
                value=route.map50,
                limit=gate.min_detector_map50,
                detail=f"{route.images} images, {route.routed:.0%} routed to {group}; "
                f"the child alone {route.child_map50:.4f}",
            )
        )
        prod = (production_detectors or {}).get(group)
        if production is not None and prod is not None:
            pairs.append((f"detector {group}: mAP50 through the bundle", route.map50, prod.map50))
    for label, cand, prod_value in pairs:
        assert prod_value is not None
        floor = prod_value - gate.max_regression
        checks.append(
            Check(
                name=f"{label} against production",
                passed=cand >= floor - 1e-9,
                value=cand,
                limit=round(floor, 4),
                detail=f"production bundle {production_version}: {prod_value:.4f}, "
                f"allowed regression {gate.max_regression}",
            )
        )
    return checks


def why(check: Check) -> str:
    """A failed check in words."""
    if check.name == "versions fit together":
        return f"the versions do not fit together: {check.detail}"
    if check.limit is None:
        return f"{check.name} failed for {check.value}" + (f": {check.detail}" if check.detail else "")
    return f"{check.name}: {check.value} is below {check.limit}" + (
        f" ({check.detail})" if check.detail else ""
    )


def bundle_reasons(checks: list[Check], production_version: str | None) -> list[str]:
    failed = [c for c in checks if not c.passed]
    if failed:
        return [why(c) for c in failed]
    if production_version is None:
        return ["no production bundle yet: passed on the absolute thresholds alone"]
    return [f"clears every threshold and is no worse than production bundle {production_version}"]
