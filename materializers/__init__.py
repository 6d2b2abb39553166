"""ZenML materializers, one per artifact type, each with a dashboard visualization."""
