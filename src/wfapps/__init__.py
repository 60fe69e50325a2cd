"""wfapps: the composition root and entry points (the ``wf`` command)."""

from wfapps.bootstrap import open_engine, open_runtime
from wfapps.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "open_engine", "open_runtime"]
