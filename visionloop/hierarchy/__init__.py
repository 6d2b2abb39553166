"""Parent/child model hierarchies: the declaration, node data sets, metrics, the bundle
manifest and its compatibility rules (no ZenML). Routing lives in
``edge_runtime.bundle`` so that evaluation and the device run the same code."""
