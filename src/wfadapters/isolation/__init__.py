"""Isolated expression evaluation: a pool of pre-started worker processes for untrusted authors."""

from wfadapters.isolation.pool import IsolationOptions, ProcessPoolEvaluator

__all__ = ["IsolationOptions", "ProcessPoolEvaluator"]
