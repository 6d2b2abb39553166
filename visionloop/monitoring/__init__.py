"""Monitoring: image and prediction statistics from the edge, compared with the data set
the production model was trained on (no ZenML)."""
