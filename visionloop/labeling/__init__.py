"""Labeling: the Label Studio project, pre-annotations ordered by uncertainty, the review
of finished annotations, and the export that turns accepted labels into a data source.

Plain functions and types; the ZenML steps in ``steps/labeling/`` call them."""
