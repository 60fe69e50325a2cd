"""Expressions.

Measured by `bench/expressions.py`, brought under the harness (see `external`).
"""

from __future__ import annotations

import bench.expressions as script
from bench.harness.workloads.external import External

TITLE = "Expressions"
WORKLOAD = External("expressions", TITLE, script)
