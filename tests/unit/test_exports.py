"""STYLE rule 3: the public API of ``wfdomain`` is pinned; removing a name is deliberate."""

from __future__ import annotations

import importlib

import wfdomain

EXPECTED = {
    # the pure core
    "Decision", "DecisionContext", "Definition", "RunState", "WorkflowEvent", "decide",
    "decode_event", "decode_state", "encode_event", "encode_state", "evolve",
    "parse_definition", "replay",
    # actions and correlation
    "ActionContext", "ActionRegistry", "CorrelationResolver",
    # ports
    "ActionLedger", "AuditLog", "Clock", "DefinitionStore", "EventStore", "IdGenerator", "Lock",
    "Scheduler", "Stream",
    # runtime
    "Ports", "RunSummary", "Runtime", "RuntimeSettings", "StuckRun",
    # errors
    "ActionFailedError", "ConcurrencyConflictError", "DefinitionError",
    "DefinitionNotFoundError", "ErrorCode", "ExpressionError", "HumanTaskNotFoundError",
    "InputValidationError", "LeaseLostError", "NondeterminismError", "RunAlreadyExistsError",
    "RunFinishedError", "RunNotFoundError", "StorageUnavailableError", "UnknownActionError",
    "UnsupportedOperationError", "WorkflowEngineError",
    # checking a changed definition against recorded histories
    "Divergence", "ReplayReport", "check_replay",
}


def test_wfdomain_exports_are_stable() -> None:
    exported = set(wfdomain.__all__)
    assert exported >= EXPECTED, f"removed from wfdomain.__all__: {sorted(EXPECTED - exported)}"
    assert all(hasattr(wfdomain, name) for name in wfdomain.__all__)


def test_the_export_list_has_no_duplicates_or_private_names() -> None:
    assert len(wfdomain.__all__) == len(set(wfdomain.__all__))
    assert not [name for name in wfdomain.__all__ if name.startswith("_")]


def test_star_import_gives_exactly_the_exports() -> None:
    namespace: dict[str, object] = {}
    exec("from wfdomain import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(wfdomain.__all__)


def test_errors_exported_at_the_top_are_the_error_module_classes() -> None:
    errors = importlib.import_module("wfdomain.errors")
    for name in errors.__all__:
        if name in wfdomain.__all__:
            assert getattr(wfdomain, name) is getattr(errors, name)
    assert issubclass(wfdomain.DefinitionError, wfdomain.WorkflowEngineError)


TESTING_EXPECTED = {
    "CANCEL_FROM", "T0", "Divergence", "Driver", "Fed", "ReplayReport", "Scenario",
    "check_replay", "definition_documents", "definitions", "drive", "interleavings",
    "open_inputs", "run_inputs", "scenarios", "shift_time",
}


def test_wfdomain_testing_exports_are_stable() -> None:
    # an optional leaf (needs the ``testing`` extra): not re-exported by ``wfdomain``
    testing = importlib.import_module("wfdomain.testing")
    assert set(testing.__all__) == TESTING_EXPECTED
    assert all(hasattr(testing, name) for name in testing.__all__)
    assert testing.check_replay is wfdomain.check_replay
    assert not set(testing.__all__) - {"check_replay", "Divergence", "ReplayReport"} & set(
        wfdomain.__all__
    )
