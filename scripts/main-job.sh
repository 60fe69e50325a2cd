#!/usr/bin/env bash
# The main job: bootstrap the venv, then run the example workflow to completion.
#
# Usage: scripts/main-job.sh [ARGS FOR `wf run`...]
#   WF_MAIN_EXTRAS  extras to install besides dev (default: sql).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap-venv.sh "${WF_MAIN_EXTRAS:-sql}"
exec "$ROOT/.venv/bin/wf" run examples/order_fulfilment "$@"
