"""Metrics of classifiers and of hierarchies.

* a node (or the flat model): top-1 accuracy, per-class precision and recall, and the
  confusion matrix (rows: true class, columns: predicted, in ``class_names`` order);
* a hierarchy, end to end on leaf classes: top-1 (an answer that fell back to its
  group counts as wrong), the share of fallbacks, the parent's group accuracy, and
  hierarchical precision, recall and F over ancestor sets (Kiritchenko et al., 2005):
  an answer's set is itself and its ancestors below the root ({group, leaf} for a
  leaf, {group} for a fallback); hP = sum |P & T| / sum |P|, hR = sum |P & T| / sum |T|,
  hF their harmonic mean. A fallback to the right group thus keeps precision and
  loses half the recall; a wrong leaf in the right group scores half of both.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClassifierMetrics(BaseModel):
    class_names: list[str]
    images: int
    top1: float
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    confusion: list[list[int]] = Field(default_factory=list)


def classifier_metrics(truth: list[str], predicted: list[str], class_names: list[str]) -> ClassifierMetrics:
    """Top-1, per-class precision/recall/support and the confusion matrix; a predicted
    name outside ``class_names`` counts as wrong (and in no column)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    index = {c: i for i, c in enumerate(class_names)}
    confusion = [[0] * len(class_names) for _ in class_names]
    for t, p in zip(truth, predicted, strict=True):
        if t in index and p in index:
            confusion[index[t]][index[p]] += 1
    per_class = {}
    for c, i in index.items():
        tp = confusion[i][i]
        support = sum(1 for t in truth if t == c)
        predicted_c = sum(row[i] for row in confusion)
        per_class[c] = {
            "precision": round(tp / predicted_c, 4) if predicted_c else 0.0,
            "recall": round(tp / support, 4) if support else 0.0,
            "support": float(support),
        }
    correct = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    return ClassifierMetrics(
        class_names=list(class_names),
        images=len(truth),
        top1=round(correct / len(truth), 4) if truth else 0.0,
        per_class=per_class,
        confusion=confusion,
    )


class HierarchyMetrics(BaseModel):
    images: int
    top1: float  # leaf answers that are right, over all images
    fallback_rate: float
    top1_answered: float  # among the images answered with a leaf
    group_accuracy: float  # the answer's group (its own, or its leaf's) is right
    hierarchical_precision: float
    hierarchical_recall: float
    hierarchical_f: float
    leaf: ClassifierMetrics


def ancestor_set(label: str, group_of: dict[str, str]) -> set[str]:
    """The label and its ancestors below the root: {group, leaf} or {group}."""
    return {group_of[label], label} if label in group_of else {label}


def hierarchy_metrics(truth: list[str], answers: list[str], group_of: dict[str, str]) -> HierarchyMetrics:
    """``truth``: leaf classes; ``answers``: a leaf class or, on a fallback, a group."""
    if len(truth) != len(answers):
        raise ValueError(f"{len(truth)} true labels but {len(answers)} answers")
    n = len(truth)
    inter = pred_size = true_size = 0
    leaf_answers = right = right_group = 0
    for t, a in zip(truth, answers, strict=True):
        tset, aset = ancestor_set(t, group_of), ancestor_set(a, group_of)
        inter += len(tset & aset)
        pred_size += len(aset)
        true_size += len(tset)
        if a in group_of:
            leaf_answers += 1
            right += a == t
        right_group += group_of[t] in aset
    hp = inter / pred_size if pred_size else 0.0
    hr = inter / true_size if true_size else 0.0
    leaves = sorted(group_of, key=list(group_of).index)
    return HierarchyMetrics(
        images=n,
        top1=round(right / n, 4) if n else 0.0,
        fallback_rate=round((n - leaf_answers) / n, 4) if n else 0.0,
        top1_answered=round(right / leaf_answers, 4) if leaf_answers else 0.0,
        group_accuracy=round(right_group / n, 4) if n else 0.0,
        hierarchical_precision=round(hp, 4),
        hierarchical_recall=round(hr, 4),
        hierarchical_f=round(2 * hp * hr / (hp + hr), 4) if hp + hr else 0.0,
        leaf=classifier_metrics(truth, answers, leaves),
    )
