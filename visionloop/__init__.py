"""visionloop: the domain code of a closed-loop MLOps system for computer vision.

Nothing in this package imports ZenML: steps, pipelines and materializers wrap it.
"""

__version__ = "0.1.0"
