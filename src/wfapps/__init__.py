"""wfapps: the composition root and entry points (the ``wf`` command)."""

from wfapps.bootstrap import open_engine
from wfapps.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "open_engine"]
