"""ZenML pipelines, one per file; a pipeline only wires steps."""
