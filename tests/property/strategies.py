"""The suite's strategies and driver: those users get from ``wfdomain.testing``.

Kept as the import path the property, unit and golden-history tests use, so the suite
tests exactly what users are given.
"""

from wfdomain.testing.driver import CANCEL_FROM, T0, Driver, Fed, drive, open_inputs, shift_time
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
    "Driver",
    "Fed",
    "Scenario",
    "definition_documents",
    "definitions",
    "drive",
    "interleavings",
    "open_inputs",
    "run_inputs",
    "scenarios",
    "shift_time",
]
