"""ZenML steps, grouped by stage. Thin wrappers around ``visionloop``: I/O, logging,
metadata."""
