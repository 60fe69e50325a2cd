#!/usr/bin/env bash
# THE test command: bootstrap the venv, then run every gate in order and stop at the first failure.
#
# Usage: scripts/test.sh [PYTEST ARGS...]
#   WF_REQUIRE_SERVICES=1  Postgres/Redis/Temporal fixtures fail instead of skipping (CI sets it).
#   WF_TEST_EXTRAS         extras to install (default: every extra the suite uses).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/.venv/bin"
START=$SECONDS

gate() { printf '\n===== %s =====\n' "$*"; }
fail() {
  local status=$1
  shift
  printf '\n===== FAILED: %s (exit %s) after %ss =====\n' "$*" "$status" "$((SECONDS - START))" >&2
  exit "$status"
}
run_gate() {
  local name=$1
  shift
  gate "$name"
  local status=0
  "$@" || status=$?
  [[ $status -eq 0 ]] || fail "$status" "$name"
}

run_gate "bootstrap venv" bash scripts/bootstrap-venv.sh "${WF_TEST_EXTRAS:-sql,postgres,redis,temporal,api,worker,tracing,ui}"

lint_paths=()
for path in src tests bench examples; do
  [[ -e $path ]] && lint_paths+=("$path")
done
run_gate "ruff check ${lint_paths[*]}" "$BIN/ruff" check "${lint_paths[@]}"
run_gate "mypy src tests (strict, config from pyproject.toml)" "$BIN/mypy" src tests
run_gate "lint-imports (import-layer contracts)" "$BIN/lint-imports" --no-logo

gate "pytest${*:+ $*}"
status=0
"$BIN/python" -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
  fail 5 "pytest collected no tests"
elif [[ $status -ne 0 ]]; then
  fail "$status" "pytest"
fi

printf '\n===== OK: ruff, mypy, lint-imports and pytest passed in %ss =====\n' "$((SECONDS - START))"
