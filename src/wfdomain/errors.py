"""The one error tree of the engine.

Every error carries a stable ``code`` (never reworded: users match on it), an optional
``path`` (the definition step path or field the error is about) and structured
``details``. ``retryable`` says whether trying the same call again may succeed.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ActionFailedError",
    "ConcurrencyConflictError",
    "DefinitionError",
    "DefinitionNotFoundError",
    "DefinitionSupersededError",
    "ErrorCode",
    "ExpressionError",
    "HumanTaskNotFoundError",
    "InputValidationError",
    "LeaseLostError",
    "NondeterminismError",
    "QuotaFullError",
    "RunAlreadyExistsError",
    "RunFinishedError",
    "RunMovedError",
    "RunNotFoundError",
    "StorageUnavailableError",
    "UnknownActionError",
    "UnsupportedOperationError",
    "WorkflowEngineError",
]


class ErrorCode:
    """The stable error codes. Values are part of the public API."""

    DEFINITION_INVALID = "DEFINITION_INVALID"
    DEFINITION_DUPLICATE_STEP_ID = "DEFINITION_DUPLICATE_STEP_ID"
    DEFINITION_NOT_FOUND = "DEFINITION_NOT_FOUND"
    DEFINITION_CONFLICT = "DEFINITION_CONFLICT"
    ACTION_UNKNOWN = "ACTION_UNKNOWN"
    ACTION_FAILED = "ACTION_FAILED"
    ACTION_TIMEOUT = "ACTION_TIMEOUT"
    ACTION_INPUT_INVALID = "ACTION_INPUT_INVALID"
    ACTION_OUTPUT_INVALID = "ACTION_OUTPUT_INVALID"
    INPUT_INVALID = "INPUT_INVALID"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    RUN_FINISHED = "RUN_FINISHED"
    RUN_MOVED = "RUN_MOVED"
    RUN_ALREADY_EXISTS = "RUN_ALREADY_EXISTS"
    HUMAN_TASK_NOT_FOUND = "HUMAN_TASK_NOT_FOUND"
    DECISION_INVALID = "DECISION_INVALID"
    CONCURRENCY_CONFLICT = "CONCURRENCY_CONFLICT"
    NONDETERMINISM = "NONDETERMINISM"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    LEASE_LOST = "LEASE_LOST"
    UNSUPPORTED = "UNSUPPORTED"
    STEP_FAILED = "STEP_FAILED"
    CHILD_RUN_FAILED = "CHILD_RUN_FAILED"
    EVENT_INVALID = "EVENT_INVALID"
    RUN_WRONG_QUEUE = "RUN_WRONG_QUEUE"
    SETTINGS_INVALID = "SETTINGS_INVALID"
    STORAGE_CORRUPT = "STORAGE_CORRUPT"
    SCHEMA_OUTDATED = "SCHEMA_OUTDATED"
    ARCHIVE_INVALID = "ARCHIVE_INVALID"
    CANCEL_NOT_CONFIRMED = "CANCEL_NOT_CONFIRMED"
    """The engine accepted a cancel request but had not cancelled the run in time."""
    API_KEY_INVALID = "API_KEY_INVALID"
    """An HTTP request without an API key, or with an unknown or revoked one."""
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    """An HTTP request body is larger than the server's limit."""
    REQUEST_INVALID = "REQUEST_INVALID"
    """An HTTP request is malformed: not JSON, a missing or mistyped field or parameter."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """An HTTP request failed on an unexpected error (a bug); the body hides the details."""
    TENANT_QUOTA_FULL = "TENANT_QUOTA_FULL"
    """An append that activates a run found the tenant at its active-run limit (internal)."""
    DEFINITION_SUPERSEDED = "DEFINITION_SUPERSEDED"
    """A run started from the version a process knew as latest, but a newer one was
    registered meanwhile (internal: the runtime starts it again from the newer one)."""


class WorkflowEngineError(Exception):
    """Root of every error the engine raises on purpose.

    Attributes:
        code: Stable machine-readable code (see ``ErrorCode`` and the expression codes).
        path: Step path or field the error is about, when there is one.
        details: Structured context (ids, versions, limits).
        retryable: Whether the same call may succeed when tried again.
    """

    default_code: str = "WF_ERROR"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        path: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.path = path
        self.message = message
        self.details: Mapping[str, object] = dict(details or {})
        where = f" at {path}" if path else ""
        super().__init__(f"[{self.code}]{where}: {message}")

    def to_dict(self) -> dict[str, object]:
        """Return the error as a JSON-ready mapping (code, message, path, details)."""
        return {
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "details": dict(self.details),
        }


class DefinitionError(WorkflowEngineError):
    """A workflow definition is malformed; ``path`` names the offending step or field."""

    default_code = ErrorCode.DEFINITION_INVALID


class DefinitionNotFoundError(WorkflowEngineError):
    """No definition with this id (and version) is registered for the tenant."""

    default_code = ErrorCode.DEFINITION_NOT_FOUND


class ExpressionError(WorkflowEngineError):
    """A JSONata expression failed to compile, was refused by the contract, or failed."""

    default_code = "EXPR_INVALID"


class UnknownActionError(WorkflowEngineError):
    """A definition names an action that is not registered."""

    default_code = ErrorCode.ACTION_UNKNOWN


class ActionFailedError(WorkflowEngineError):
    """An action raised. Raise it from an action with ``retryable=False`` to stop retries."""

    default_code = ErrorCode.ACTION_FAILED

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = True,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retryable = retryable


class InputValidationError(WorkflowEngineError):
    """A run input, event payload or task decision does not match its schema."""

    default_code = ErrorCode.INPUT_INVALID


class RunNotFoundError(WorkflowEngineError):
    """The run does not exist for this tenant (another tenant's runs read as not found)."""

    default_code = ErrorCode.RUN_NOT_FOUND


class RunFinishedError(WorkflowEngineError):
    """The run has already completed, failed or been cancelled."""

    default_code = ErrorCode.RUN_FINISHED


class RunMovedError(RunFinishedError):
    """The run was moved to another engine, which executes it now (``details``: where)."""

    default_code = ErrorCode.RUN_MOVED


class RunAlreadyExistsError(WorkflowEngineError):
    """A run with this id already exists."""

    default_code = ErrorCode.RUN_ALREADY_EXISTS


class HumanTaskNotFoundError(WorkflowEngineError):
    """No open human task with this id exists for the tenant."""

    default_code = ErrorCode.HUMAN_TASK_NOT_FOUND


class ConcurrencyConflictError(WorkflowEngineError):
    """An append found the run at another version than expected (another writer won)."""

    default_code = ErrorCode.CONCURRENCY_CONFLICT
    retryable = True

    def __init__(
        self, run_id: str, expected_version: int, actual_version: int | None = None
    ) -> None:
        super().__init__(
            f"run {run_id}: expected version {expected_version}, found {actual_version}",
            details={
                "run_id": run_id,
                "expected_version": expected_version,
                "actual_version": actual_version,
            },
        )
        self.run_id = run_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class NondeterminismError(WorkflowEngineError):
    """Replay diverged from history, or one idempotency key got two different outcomes."""

    default_code = ErrorCode.NONDETERMINISM


class StorageUnavailableError(WorkflowEngineError):
    """A backend could not be reached or timed out; the call may be retried."""

    default_code = ErrorCode.STORAGE_UNAVAILABLE
    retryable = True


class LeaseLostError(WorkflowEngineError):
    """A lock lease expired or belongs to another owner."""

    default_code = ErrorCode.LEASE_LOST


class QuotaFullError(WorkflowEngineError):
    """The tenant already has as many active runs as its limit allows; nothing was written.

    Raised by ``EventStore.append`` with an ``Admission``; the runtime turns it into a
    paused-for-quota run, so callers never see it.
    """

    default_code = ErrorCode.TENANT_QUOTA_FULL


class DefinitionSupersededError(WorkflowEngineError):
    """A run's start named its definition's latest version, and a newer one is registered.

    Raised by ``EventStore.append`` with ``latest_definition=True``; nothing was written.
    The runtime forgets the version it knew as latest and starts the run again, so
    callers never see it (unless versions keep being registered faster than it retries).
    """

    default_code = ErrorCode.DEFINITION_SUPERSEDED
    retryable = True


class UnsupportedOperationError(WorkflowEngineError):
    """The backend or engine cannot do this; it says so instead of doing it silently."""

    default_code = ErrorCode.UNSUPPORTED
