"""A workflow-orchestrated lifecycle for transformer text classifiers."""

__version__ = "0.1.0"
