#!/usr/bin/env bash
# Create or refresh the project venv at .venv, idempotently.
#
# Usage: scripts/bootstrap-venv.sh [EXTRAS...]     e.g.  scripts/bootstrap-venv.sh sql,postgres redis
#
# Installs `-e '.[dev,EXTRAS]'`. The stamp file .venv/.wf-bootstrap-stamp records the sha256 of
# pyproject.toml and the extras installed with it. Nothing is installed when pyproject.toml is
# unchanged and the requested extras are already installed; when pyproject.toml is unchanged the
# extras installed before are kept (so the main job and the test suite can share one venv
# without reinstalling each other's extras on every run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.wf-bootstrap-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

die() { echo "bootstrap-venv: $*" >&2; exit 1; }

# shellcheck source=scripts/find-python.sh
source "$ROOT/scripts/find-python.sh"

venv_ok() {
  [[ -x "$VENV/bin/python" ]] &&
    "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

# Normalise the extras: split on commas and spaces, always include dev, sort, deduplicate.
normalise() { tr ',[:space:]' '\n' | sed '/^$/d' | sort -u | paste -sd, -; }
requested="$(printf '%s\n' dev "$@" | normalise)"

mkdir -p "$VENV"
# Serialise concurrent bootstraps (the main job and the tests may start together).
exec 9>"$VENV/.wf-bootstrap.lock"
flock 9

if ! venv_ok; then
  python="$(find_python)" || die "need python3.11 (or a python3 that is 3.11+) on PATH"
  echo "bootstrap-venv: creating $VENV with $python ($("$python" --version 2>&1))"
  "$python" -m venv --clear "$VENV"
  rm -f "$STAMP"
  exec 9>"$VENV/.wf-bootstrap.lock" # --clear removed the lock file; take it again
  flock 9
fi

hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
stamp_hash=""
stamp_extras=""
if [[ -f "$STAMP" ]]; then
  stamp_hash="$(sed -n 1p "$STAMP")"
  stamp_extras="$(sed -n 2p "$STAMP")"
fi

if [[ "$stamp_hash" == "$hash" ]]; then
  wanted="$(printf '%s\n%s\n' "$requested" "$stamp_extras" | normalise)"
  if [[ "$wanted" == "$stamp_extras" ]]; then
    exit 0
  fi
else
  wanted="$requested"
fi

echo "bootstrap-venv: installing -e '.[$wanted]' (pyproject.toml or extras changed)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
(cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet -e ".[$wanted]")
printf '%s\n%s\n' "$hash" "$wanted" >"$STAMP"
