"""Deployment: the promotion gate, staging checks and the signed model channel (no ZenML)."""
