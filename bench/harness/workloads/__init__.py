"""The harness's workloads: one module each, each exposing ``WORKLOAD``."""
