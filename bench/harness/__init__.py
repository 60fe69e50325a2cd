"""One command for every benchmark: ``bash scripts/bench.sh`` (see bench/README.md)."""
