"""Testing helpers for users: prove that your definitions replay deterministically.

Optional: needs the ``testing`` extra (``pip install 'wfengine[testing]'``, which brings
hypothesis). Nothing else in ``wfdomain`` imports this package (an import-linter contract
keeps it a leaf), so the engine itself never needs hypothesis.

- ``definitions``, ``definition_documents``, ``run_inputs``, ``interleavings`` and
  ``scenarios``: hypothesis strategies for generated definitions (every step kind,
  nested), run inputs and interleavings of external inputs.
- ``drive`` and ``Driver``: run a definition purely (no storage, no clock) through the
  inputs an interleaving picks, and keep the history, the decisions and the commands.
- ``check_replay``: re-decide a recorded history under a (changed) definition and report
  the first diverging event and its step path.

See ``docs/testing.md`` for a walk-through.
"""

from wfdomain.replay_check import Divergence, ReplayReport, check_replay
from wfdomain.testing.driver import (
    CANCEL_FROM,
    T0,
    Driver,
    Fed,
    drive,
    open_inputs,
    shift_time,
)
from wfdomain.testing.strategies import (
    Scenario,
    definition_documents,
    definitions,
    interleavings,
    run_inputs,
    scenarios,
)

__all__ = [
    "CANCEL_FROM",
    "T0",
    "Divergence",
    "Driver",
    "Fed",
    "ReplayReport",
    "Scenario",
    "check_replay",
    "definition_documents",
    "definitions",
    "drive",
    "interleavings",
    "open_inputs",
    "run_inputs",
    "scenarios",
    "shift_time",
]
