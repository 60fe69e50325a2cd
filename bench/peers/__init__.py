"""Peers measured on the harness's workloads (installed only in .venv-bench)."""
