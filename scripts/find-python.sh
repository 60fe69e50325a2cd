# Sourced by scripts/bootstrap-venv.sh and scripts/bench.sh: the one place that says which
# interpreter a new venv is made with.

# Print the path of a Python 3.11+ on PATH (python3.11 first), or fail.
find_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
