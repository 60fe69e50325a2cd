#!/usr/bin/env bash
# Every benchmark in one run: engine, raw backend limits and peers, on this machine.
#
# Usage: bash scripts/bench.sh [--quick] [--only NAME[,NAME...]] [HARNESS ARGS...]
#        bash scripts/bench.sh --setup-only      # only create/refresh .venv-bench
#
# Creates or refreshes .venv-bench (the project with its sql, postgres, redis, temporal, worker
# extras, plus the peers and tools: dbos, eventsourcing, matplotlib, orjson, pyinstrument).
# The peers never enter the library's own dependencies. Then runs bench/harness, which
# starts a Temporal dev server on a free loopback port (stopped at the end), uses the
# Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) that already run, and writes
# docs/benchmarks.md and docs/img/bench-*.png. Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-bench"
STAMP="$VENV/.wf-bench-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# The peers' versions, as measured in /work/shared/notes/perf-anchors.md.
PEERS=(dbos==3.4.0 eventsourcing==9.5.6 matplotlib orjson pyinstrument)
EXTRAS="sql,postgres,redis,temporal,worker"

# shellcheck source=scripts/find-python.sh
source "$ROOT/scripts/find-python.sh"

mkdir -p "$VENV"
exec 9>"$VENV/.wf-bench.lock"
flock 9
if [[ ! -x "$VENV/bin/python" ]]; then
  python="$(find_python)" || { echo "bench: need python3.11+" >&2; exit 1; }
  echo "bench: creating $VENV with $python" >&2
  "$python" -m venv "$VENV"
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $EXTRAS ${PEERS[*]}"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  echo "bench: installing the project [$EXTRAS] and ${PEERS[*]} into $VENV" >&2
  log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip &&
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" "${PEERS[@]}"); } \
    >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bench: install failed (full log: $log)" >&2
    exit 1
  fi
  printf '%s' "$want" >"$STAMP"
fi

[[ "${1:-}" == "--setup-only" ]] && exit 0
cd "$ROOT"
exec "$VENV/bin/python" -m bench.harness "$@"
