"""The worker service (``wf worker``).

Consumers, the scheduler loop, the stuck-run detector, health and Prometheus metrics, and
JSON logs. Needs the ``worker`` extra (prometheus-client).
"""

from wfapps.json_logs import JsonFormatter, configure_logging
from wfapps.worker.main import load_packages, runtime_options, serve
from wfapps.worker.metrics import WorkerMetrics
from wfapps.worker.service import WorkerService

__all__ = ["JsonFormatter", "WorkerMetrics", "WorkerService", "configure_logging",
           "load_packages", "runtime_options", "serve"]
