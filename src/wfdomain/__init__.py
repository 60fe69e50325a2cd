"""wfdomain: the pure domain and application runtime of the workflow engine.

Definitions, events, the interpreter (``evolve``/``decide``), the expression contract,
the ports, and the ``Runtime`` that drives runs over them. No I/O happens here: clocks,
ids, storage and transport arrive through the ports.
"""

from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.codec import decode_event, decode_state, encode_event, encode_state
from wfdomain.commands import Decision
from wfdomain.correlation import CorrelationResolver
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition, parse_definition
from wfdomain.engine import Engine
from wfdomain.errors import (
    ActionFailedError,
    ConcurrencyConflictError,
    DefinitionError,
    DefinitionNotFoundError,
    ErrorCode,
    ExpressionError,
    HumanTaskNotFoundError,
    InputValidationError,
    LeaseLostError,
    NondeterminismError,
    RunAlreadyExistsError,
    RunFinishedError,
    RunNotFoundError,
    StorageUnavailableError,
    UnknownActionError,
    UnsupportedOperationError,
    WorkflowEngineError,
)
from wfdomain.events import WorkflowEvent
from wfdomain.ports import (
    ActionLedger,
    AuditLog,
    Clock,
    DefinitionStore,
    EventStore,
    IdGenerator,
    Lock,
    Scheduler,
    Stream,
)
from wfdomain.records import ExecutedRun, RunSummary
from wfdomain.replay_check import Divergence, ReplayReport, check_replay
from wfdomain.runtime import Ports, Runtime, RuntimeSettings, StuckRun
from wfdomain.state import RunState, evolve, replay

__all__ = [
    "ActionContext",
    "ActionFailedError",
    "ActionLedger",
    "ActionRegistry",
    "AuditLog",
    "Clock",
    "ConcurrencyConflictError",
    "CorrelationResolver",
    "Decision",
    "DecisionContext",
    "Definition",
    "DefinitionError",
    "DefinitionNotFoundError",
    "DefinitionStore",
    "Divergence",
    "Engine",
    "ErrorCode",
    "ExecutedRun",
    "EventStore",
    "ExpressionError",
    "HumanTaskNotFoundError",
    "IdGenerator",
    "InputValidationError",
    "LeaseLostError",
    "Lock",
    "NondeterminismError",
    "Ports",
    "ReplayReport",
    "RunAlreadyExistsError",
    "RunFinishedError",
    "RunNotFoundError",
    "RunState",
    "RunSummary",
    "Runtime",
    "RuntimeSettings",
    "Scheduler",
    "StorageUnavailableError",
    "Stream",
    "StuckRun",
    "UnknownActionError",
    "UnsupportedOperationError",
    "WorkflowEngineError",
    "WorkflowEvent",
    "check_replay",
    "decide",
    "decode_event",
    "decode_state",
    "encode_event",
    "encode_state",
    "evolve",
    "parse_definition",
    "replay",
]
