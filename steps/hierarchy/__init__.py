"""Steps of the hierarchy pipelines: the data (leaf and node data sets, detector groups'
images joined), each classifier node's training (train, evaluate, gate, register; a
detector child runs the detection steps, then ``register_detector``) and the bundle
(assemble, gate, stage, promote)."""

from steps.hierarchy.assemble_bundle import assemble_bundle
from steps.hierarchy.evaluate_classifier import evaluate_classifier
from steps.hierarchy.gate_bundle import gate_bundle
from steps.hierarchy.gate_node import gate_node
from steps.hierarchy.ingest_classes import ingest_classes
from steps.hierarchy.join_detector_group import join_detector_group
from steps.hierarchy.node_dataset import node_dataset
from steps.hierarchy.promote_bundle import promote_bundle
from steps.hierarchy.register_detector import register_detector
from steps.hierarchy.register_node import register_node
from steps.hierarchy.stage_bundle import stage_bundle
from steps.hierarchy.train_classifier import train_classifier

__all__ = [
    "assemble_bundle",
    "evaluate_classifier",
    "gate_bundle",
    "gate_node",
    "ingest_classes",
    "join_detector_group",
    "node_dataset",
    "promote_bundle",
    "register_detector",
    "register_node",
    "stage_bundle",
    "train_classifier",
]
