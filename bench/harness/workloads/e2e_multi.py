"""End-to-end runs, Postgres + Redis, 1/2/4 worker processes.

Measured by `bench/e2e.py`, brought under the harness (see `external`).
"""

from __future__ import annotations

import bench.e2e as script
from bench.harness.workloads.external import External

TITLE = "End-to-end runs, Postgres + Redis, 1/2/4 worker processes"
WORKLOAD = External("e2e-multi", TITLE, script)
