"""Every API error is a JSON body ``{"error": {code, message, path, details}}``.

The HTTP status follows from the stable code; another tenant's run is a 404, like an
unknown one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from wfdomain.errors import ErrorCode, WorkflowEngineError

__all__ = ["error_body", "install_error_handlers", "status_of"]

_log = logging.getLogger("wfapps.api")

_STATUS: dict[str, int] = {
    ErrorCode.API_KEY_INVALID: 401,
    ErrorCode.RUN_NOT_FOUND: 404,
    ErrorCode.DEFINITION_NOT_FOUND: 404,
    ErrorCode.HUMAN_TASK_NOT_FOUND: 404,
    ErrorCode.RUN_FINISHED: 409,
    ErrorCode.RUN_MOVED: 409,
    ErrorCode.RUN_ALREADY_EXISTS: 409,
    ErrorCode.DEFINITION_CONFLICT: 409,
    ErrorCode.CONCURRENCY_CONFLICT: 409,
    ErrorCode.NONDETERMINISM: 409,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.INPUT_INVALID: 422,
    ErrorCode.DECISION_INVALID: 422,
    ErrorCode.EVENT_INVALID: 422,
    ErrorCode.ARCHIVE_INVALID: 422,
    ErrorCode.REQUEST_INVALID: 422,
    ErrorCode.ACTION_UNKNOWN: 422,
    ErrorCode.UNSUPPORTED: 501,
    ErrorCode.STORAGE_UNAVAILABLE: 503,
}


def status_of(code: str) -> int:
    """The HTTP status of an error code (400 for codes of a bad request not listed)."""
    return _STATUS.get(code, 400)


def error_body(code: str, message: str, *, path: str | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "message": message, "path": path,
                      "details": details or {}}}


def error_response(status: int, code: str, message: str, **kw: Any) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(error_body(code, message, **kw), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Turn engine, validation, HTTP and unexpected errors into JSON error bodies."""

    async def engine_error(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, WorkflowEngineError)
        body = e.to_dict()
        status = 503 if e.retryable and e.code not in _STATUS else status_of(e.code)
        return JSONResponse({"error": body}, status_code=status)

    async def invalid_request(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, RequestValidationError)
        problems = [{"loc": [str(part) for part in p["loc"]], "message": str(p["msg"])}
                    for p in e.errors()]
        first = problems[0] if problems else {"loc": [], "message": "invalid request"}
        return error_response(422, ErrorCode.REQUEST_INVALID, str(first["message"]),
                              path=".".join(first["loc"]) or None,
                              details={"problems": problems})

    async def http_error(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, HTTPException)
        return error_response(e.status_code, ErrorCode.REQUEST_INVALID, str(e.detail))

    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        _log.exception("unexpected error: %s", type(e).__name__)
        return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")

    app.add_exception_handler(WorkflowEngineError, engine_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
