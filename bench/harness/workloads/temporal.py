"""Temporal engine against direct temporalio.

Measured by `bench/temporal.py`, brought under the harness (see `external`).
"""

from __future__ import annotations

import bench.temporal as script
from bench.harness.workloads.external import External

TITLE = "Temporal engine against direct temporalio"
WORKLOAD = External("temporal", TITLE, script)
