"""The JSONata expression contract: one way to compile and evaluate, used by every engine.

Expressions are JSONata (jsonata-python, pinned) with a safety layer on top:

* At compile time (when a definition is loaded): a source length cap, ``==`` normalised to
  ``=``, an allow-list of built-in functions enforced on the parsed AST however a function is
  reached (called, aliased, chained with ``~>``, partially applied or passed as a value), no
  ``$__*`` names (they would switch jsonata's guardrails off), and regex literals compiled
  with RE2 so they run in linear time.
* At each evaluation: a fresh time and depth box, a lowered range cap, the deterministic
  ``$nowIso()`` bound to the logical time passed in, denied built-ins bound to nothing as a
  backstop, input checked and output converted to plain JSON values, and an output size cap.

Every failure is an :class:`~wfdomain.errors.ExpressionError` with a stable code from
:class:`ExpressionCode`; no raw exception escapes. The guardrails count AST steps, so
native work inside one built-in (a huge ``$join``) is only bounded by the caps around it.
An :class:`ExpressionEvaluator` decides where evaluation runs: :data:`IN_PROCESS` (the
default) in the caller's thread, or an isolating evaluator (``wfadapters.isolation``) in a
pool of worker processes with a memory limit and a hard deadline, which runs this same
module.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import re2
from jsonata import Functions, JException, Jsonata, Parser, Timebox

from wfdomain.errors import ExpressionError
from wfdomain.expression_paths import NOT_PLAIN, field_path, follow
from wfdomain.expression_syntax import SOURCE_TAIL, normalize, scan
from wfdomain.expression_values import json_document, json_result

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CONTRACT_FUNCTIONS",
    "CompiledExpression",
    "ExpressionCode",
    "ExpressionEvaluator",
    "ExpressionLimits",
    "IN_PROCESS",
    "InProcessEvaluator",
    "check_expression",
    "compile_expression",
    "evaluation_input",
    "iso_millis",
    "normalize",
]


class ExpressionCode:
    """The stable error codes of the expression contract. Values are public API."""

    SYNTAX = "EXPR_SYNTAX"
    FUNCTION_NOT_ALLOWED = "EXPR_FUNCTION_NOT_ALLOWED"
    RESERVED_NAME = "EXPR_RESERVED_NAME"
    TIMEOUT = "EXPR_TIMEOUT"
    DEPTH_EXCEEDED = "EXPR_DEPTH_EXCEEDED"
    RANGE_TOO_LARGE = "EXPR_RANGE_TOO_LARGE"
    MEMORY_LIMIT = "EXPR_MEMORY_LIMIT"
    OUTPUT_TOO_LARGE = "EXPR_OUTPUT_TOO_LARGE"
    INPUT_TOO_LARGE = "EXPR_INPUT_TOO_LARGE"
    TOO_LONG = "EXPR_TOO_LONG"
    REGEX_NOT_ALLOWED = "EXPR_REGEX_NOT_ALLOWED"
    EVALUATION = "EXPR_EVALUATION_FAILED"
    INVALID = "EXPR_INVALID"
    ISOLATION_FAILED = "EXPR_ISOLATION_FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressionLimits:
    """Bounds applied when compiling and evaluating an expression.

    Attributes:
        max_source_length: Longest accepted source, in characters.
        timeout_ms: Wall-clock budget of one evaluation, checked at every AST step.
        max_depth: Deepest nesting of AST evaluation (recursion) in one evaluation.
        max_output_bytes: Largest result, measured as compact UTF-8 JSON.
        max_range: Most elements one range operator (``[a..b]``) may allocate.
        max_input_bytes: Largest document an evaluation reads, as approximate compact JSON.
        max_input_depth: Deepest nesting of objects and arrays in that document.
    """

    max_source_length: int = 4096
    timeout_ms: int = 1000
    max_depth: int = 200
    max_output_bytes: int = 1_000_000
    max_range: int = 100_000
    max_input_bytes: int = 16_000_000
    max_input_depth: int = 64

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExpressionError(
                    f"ExpressionLimits.{field.name} must be a positive integer, got {value!r}",
                    code=ExpressionCode.INVALID,
                    details={"field": field.name},
                )


_DEFAULT_LIMITS: Final = ExpressionLimits()

ALLOWED_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        "abs", "append", "assert", "average", "base64decode", "base64encode", "boolean",
        "ceil", "clone", "contains", "count", "decodeUrl", "decodeUrlComponent", "distinct",
        "each", "encodeUrl", "encodeUrlComponent", "error", "exists", "filter", "floor",
        "formatBase", "formatInteger", "formatNumber", "fromMillis", "join", "keys", "length",
        "lookup", "lowercase", "map", "match", "max", "merge", "min", "not", "number",
        "parseInteger", "power", "reduce", "replace", "reverse", "round", "sift", "single",
        "sort", "split", "spread", "sqrt", "string", "substring", "substringAfter",
        "substringBefore", "sum", "toMillis", "trim", "type", "uppercase", "zip",
    }
)  # fmt: skip
"""JSONata built-ins (without ``$``) an expression may use. Everything else built in is denied:
``eval`` (defeats static checks), ``now``/``millis``/``random``/``shuffle`` (not replayable)
and ``pad`` (allocates unboundedly inside one step). ``toMillis`` is allowed without a picture
argument only: with one, jsonata fills missing date parts from the wall clock."""

CONTRACT_FUNCTIONS: Final[frozenset[str]] = frozenset({"nowIso"})
"""Functions the contract adds. ``$nowIso()`` is the logical time of the evaluation."""

_BUILTINS: Final = frozenset(Jsonata.static_frame.bindings)
# Derived from the library, so a built-in added by an upgrade is denied until reviewed.
_DENIED: Final = tuple(sorted(_BUILTINS - ALLOWED_FUNCTIONS - CONTRACT_FUNCTIONS))
_RESERVED_PREFIX: Final = "__"
_CACHE_SIZE: Final = 2048


# ------------------------------------------------------------------------------------ compile


def _re2_engine(pattern: str, flags: Any) -> Any:
    """Compile a JSONata regex literal with RE2 (linear time, no catastrophic backtracking)."""
    inline = ("i" if flags.case_insensitive else "") + ("m" if flags.multiline else "")
    return re2.compile(f"(?{inline}){pattern}" if inline else pattern, _RE2_OPTIONS)


_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False  # refusals are reported as ExpressionError, not on stderr


class _Budget:
    """One evaluation's time and depth bounds, called by jsonata at every AST node.

    jsonata's own ``Timebox`` reads the clock on every node entry and exit, a sixth of the
    time of a small evaluation; this one checks depth at every entry and the clock at every
    eighth, so the timeout may overshoot by the time of eight AST steps.
    """

    __slots__ = ("deadline", "depth", "max_depth", "steps", "timeout_ms")

    def __init__(self, limits: ExpressionLimits) -> None:
        self.timeout_ms = limits.timeout_ms
        self.max_depth = limits.max_depth
        self.deadline = Timebox.current_milli_time() + limits.timeout_ms
        self.depth = 0
        self.steps = 0

    def enter(self, expr: Any, input: Any, env: Any) -> None:
        if env.is_parallel_call:
            return
        self.depth += 1
        if self.depth > self.max_depth:
            raise JException("D1011", -1)
        self.steps += 1
        if not self.steps & 7 and Timebox.current_milli_time() > self.deadline:
            raise JException("D1012", -1, self.timeout_ms)

    def leave(self, expr: Any, input: Any, env: Any, result: Any) -> None:
        if not env.is_parallel_call:
            self.depth -= 1


class _BoundedJsonata(Jsonata):  # type: ignore[misc]
    """jsonata with a lower range cap, read from the instance at evaluation time.

    jsonata runs every evaluation on the instance that is *current in the thread* (the one
    constructed last), not the one called; ``CompiledExpression.evaluate`` therefore
    installs a per-call copy carrying that call's cap.
    """

    max_range: int = _DEFAULT_LIMITS.max_range

    def __init__(self, source: str, regex_engine: Any) -> None:
        super().__init__(source, regex_engine)
        # The run-time backstop, bound once in the expression's own environment (shared by
        # every per-call copy): denied built-ins are nothing, $toMillis takes no picture.
        for name in _DENIED:
            self.environment.bind(name, None)
        self.environment.bind("toMillis", _TO_MILLIS)

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        if (
            isinstance(lhs, int)
            and isinstance(rhs, int)
            and not isinstance(lhs, bool)
            and not isinstance(rhs, bool)
            and rhs - lhs + 1 > self.max_range
        ):
            raise JException("D2014", -1, rhs - lhs + 1)
        return super().evaluate_range_expression(lhs, rhs)


def _current_instance() -> Any:
    """The jsonata instance current in this thread (jsonata evaluates on it), or None."""
    return getattr(Jsonata.CURRENT, "jsonata", None)


def _restore_current_instance(previous: Any) -> None:
    if previous is not None:
        Jsonata.CURRENT.jsonata = previous
    elif hasattr(Jsonata.CURRENT, "jsonata"):
        del Jsonata.CURRENT.jsonata


def _ast_names(ast: Any) -> Iterator[str]:
    """Yield every environment name the AST reads or binds.

    That is variables (calls, values, ``~>`` targets, partial applications), lambda
    parameters, ``:=`` targets and the ``@$focus`` / ``#$index`` bindings, which the parser
    keeps as plain strings on path steps.
    """
    stack: list[Any] = [ast]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, Parser.Symbol):
            if id(item) in seen:
                continue
            seen.add(id(item))
            kind = getattr(item, "type", None)
            if kind in ("variable", "index") and isinstance(item.value, str):
                yield item.value
            for attribute in ("focus", "index"):
                bound = getattr(item, attribute, None)
                if isinstance(bound, str):
                    yield bound
            stack.extend(vars(item).values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _check_names(names: frozenset[str]) -> None:
    reserved = sorted(name for name in names if name.startswith(_RESERVED_PREFIX))
    if reserved:
        raise ExpressionError(
            f"${reserved[0]} is a reserved name",
            code=ExpressionCode.RESERVED_NAME,
            details={"names": reserved},
        )
    denied = sorted(names & frozenset(_DENIED))
    if denied:
        raise ExpressionError(
            f"function ${denied[0]} is not allowed in expressions",
            code=ExpressionCode.FUNCTION_NOT_ALLOWED,
            details={"functions": denied},
        )


def _with_path(error: ExpressionError, path: str | None) -> ExpressionError:
    return ExpressionError(error.message, code=error.code, path=path, details=error.details)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile(normalized: str) -> _BoundedJsonata:
    """Parse and check a normalised source. Raises ExpressionError without a path."""
    previous = _current_instance()
    try:
        program = _BoundedJsonata(normalized + SOURCE_TAIL, _re2_engine)
    except JException as exc:
        raise ExpressionError(
            f"syntax error: {exc}",
            code=ExpressionCode.SYNTAX,
            details={"jsonata_code": exc.error, "position": exc.location},
        ) from None
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ExpressionError(
            f"regex not supported by RE2 (no backreferences or lookaround): {reason}",
            code=ExpressionCode.REGEX_NOT_ALLOWED,
        ) from None
    except RecursionError:
        raise ExpressionError(
            "expression is nested too deeply to parse", code=ExpressionCode.DEPTH_EXCEEDED
        ) from None
    except MemoryError:
        raise ExpressionError(
            "out of memory while parsing", code=ExpressionCode.MEMORY_LIMIT
        ) from None
    except Exception as exc:  # the tokenizer indexes past the end on some malformed input
        raise ExpressionError(
            f"syntax error: {type(exc).__name__}: {exc}",
            code=ExpressionCode.SYNTAX,
            details={"exception": type(exc).__name__},
        ) from None
    finally:  # constructing an instance makes it the thread's current one: undo that
        _restore_current_instance(previous)
    _check_names(frozenset(_ast_names(program.ast)) | scan(normalized)[1])
    return program


def compile_expression(
    source: str, *, path: str | None = None, limits: ExpressionLimits | None = None
) -> CompiledExpression:
    """Compile a JSONata expression under the contract (cached by normalised source).

    Args:
        source: The expression as written; ``==`` is accepted for ``=``.
        path: Where the expression lives in its definition; carried by every error.
        limits: Bounds for the source length and the default evaluation bounds.

    Returns:
        A compiled expression, safe to share between threads and evaluations.

    Raises:
        ExpressionError: ``EXPR_TOO_LONG``, ``EXPR_SYNTAX``, ``EXPR_FUNCTION_NOT_ALLOWED``,
            ``EXPR_RESERVED_NAME``, ``EXPR_REGEX_NOT_ALLOWED``, ``EXPR_DEPTH_EXCEEDED`` or
            ``EXPR_INVALID`` (source not a string).
    """
    limits = limits or _DEFAULT_LIMITS
    if not isinstance(source, str):
        raise ExpressionError(
            f"expression must be a string, got {type(source).__name__}",
            code=ExpressionCode.INVALID,
            path=path,
        )
    if len(source) > limits.max_source_length:
        raise ExpressionError(
            f"expression is {len(source)} characters long, the limit is {limits.max_source_length}",
            code=ExpressionCode.TOO_LONG,
            path=path,
            details={"length": len(source), "limit": limits.max_source_length},
        )
    try:
        normalized, program = _normalized_program(source)
    except ExpressionError as error:
        raise _with_path(error, path) from None
    return CompiledExpression(normalized, program, path=path, limits=limits)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _normalized_program(source: str) -> tuple[str, _BoundedJsonata]:
    # Cached by source as written too: normalising tokenizes, and every evaluation of a
    # definition's expression compiles it (the cache answers) with its own path.
    normalized = normalize(source)
    return normalized, _compile(normalized)


def check_expression(source: str, *, path: str | None = None) -> None:
    """Check that ``source`` compiles under the contract, and discard the result.

    Args:
        source: The expression as written.
        path: Where the expression lives in its definition; carried by the error.

    Raises:
        ExpressionError: As :func:`compile_expression`.
    """
    compile_expression(source, path=path)


# ----------------------------------------------------------------------------------- evaluate


def _to_millis_without_picture(timestamp: Any = None, picture: Any = None) -> Any:
    if picture is not None:
        raise ExpressionError(
            "$toMillis with a picture argument is not allowed: jsonata fills missing date "
            "parts from the wall clock; pass an ISO-8601 timestamp",
            code=ExpressionCode.FUNCTION_NOT_ALLOWED,
            details={"functions": ["toMillis"]},
        )
    return Functions.datetime_to_millis(timestamp, None)


_TO_MILLIS: Final = Jsonata.JFunction(Jsonata.JLambda(_to_millis_without_picture), "<s-s?:n>")


@functools.lru_cache(maxsize=256)
def _now_iso_function(stamp: str) -> Any:
    """``$nowIso`` returning ``stamp``; shared by the evaluations of one logical time.

    Building a signed jsonata function parses its signature (microseconds); the decisions
    of one input evaluate many expressions at the same time.
    """
    return Jsonata.JFunction(Jsonata.JLambda(lambda: stamp), "<:s>")


def _check_now(now: datetime) -> None:
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ExpressionError(
            f"now must be a timezone-aware datetime, got {now!r}", code=ExpressionCode.INVALID
        )


def iso_millis(now: datetime) -> str:
    """Render an aware time as ``$nowIso()`` returns it: UTC, milliseconds, ``Z``."""
    _check_now(now)
    utc = now.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def _evaluation_error(exc: JException, limits: ExpressionLimits) -> ExpressionError:
    details: dict[str, object] = {"jsonata_code": exc.error}
    if exc.error == "D1011":
        code, message = ExpressionCode.DEPTH_EXCEEDED, "evaluation nested too deeply"
        details["limit"] = limits.max_depth
    elif exc.error == "D1012":
        code, message = ExpressionCode.TIMEOUT, f"evaluation took over {limits.timeout_ms} ms"
        details["limit"] = limits.timeout_ms
    elif exc.error == "D2014":
        code, message = ExpressionCode.RANGE_TOO_LARGE, f"range of {exc.current} elements"
        details["limit"] = limits.max_range
    elif exc.error == "T1006" and exc.current in _DENIED:
        code, message = ExpressionCode.FUNCTION_NOT_ALLOWED, f"${exc.current} is not allowed"
    else:
        code, message = ExpressionCode.EVALUATION, str(exc)
    return ExpressionError(message, code=code, details=details)


class _CheckedInput:
    """A document :func:`evaluation_input` has already checked (``evaluate_checked``)."""

    __slots__ = ("document",)

    def __init__(self, document: Any) -> None:
        self.document = document


class CompiledExpression:
    """A checked, compiled expression. Obtain one from :func:`compile_expression`.

    Attributes:
        source: The normalised source.
        path: Where the expression lives in its definition, carried by every error.
        limits: The bounds used when :meth:`evaluate` is given none.
    """

    __slots__ = ("_fields", "_program", "limits", "path", "source")

    def __init__(
        self, source: str, program: Any, *, path: str | None, limits: ExpressionLimits
    ) -> None:
        self.source = source
        self.path = path
        self.limits = limits
        self._program = program
        self._fields = field_path(source)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r}, path={self.path!r})"

    def evaluate(self, data: Any, *, now: datetime, limits: ExpressionLimits | None = None) -> Any:
        """Evaluate against ``data`` at the logical time ``now``.

        Args:
            data: JSON-like input (mappings, lists or tuples, str, int, float, bool, None),
                e.g. ``{"input": ..., "state": ..., "steps": ...}``. It is never mutated,
                and the result never shares objects with it.
            now: The logical time (timezone-aware) that ``$nowIso()`` returns, as
                ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC.
            limits: Bounds for this evaluation; defaults to the compile-time limits.

        Returns:
            The result as plain JSON values; JSONata's "no result" is ``None``.

        Raises:
            ExpressionError: ``EXPR_TIMEOUT``, ``EXPR_DEPTH_EXCEEDED``,
                ``EXPR_RANGE_TOO_LARGE``, ``EXPR_MEMORY_LIMIT``, ``EXPR_OUTPUT_TOO_LARGE``,
                ``EXPR_FUNCTION_NOT_ALLOWED``, ``EXPR_EVALUATION_FAILED`` (a JSONata error,
                code in ``details["jsonata_code"]``) or ``EXPR_INVALID`` (input, ``now`` or
                result not JSON, or any other failure).
        """
        limits = limits or self.limits
        try:
            return self._evaluate(data, now, limits)
        except ExpressionError as error:
            raise _with_path(error, self.path) from None
        except JException as exc:
            raise _with_path(_evaluation_error(exc, limits), self.path) from None
        except RecursionError:
            raise ExpressionError(
                "evaluation nested too deeply", code=ExpressionCode.DEPTH_EXCEEDED, path=self.path
            ) from None
        except MemoryError:
            raise ExpressionError(
                "evaluation ran out of memory", code=ExpressionCode.MEMORY_LIMIT, path=self.path
            ) from None
        except (ArithmeticError, ValueError) as exc:  # 1/0, $number("x"): the data failed
            raise ExpressionError(
                f"arithmetic failed: {type(exc).__name__}: {exc}",
                code=ExpressionCode.EVALUATION,
                path=self.path,
                details={"exception": type(exc).__name__},
            ) from None
        except Exception as exc:
            raise ExpressionError(
                f"evaluation failed: {type(exc).__name__}: {exc}",
                code=ExpressionCode.INVALID,
                path=self.path,
                details={"exception": type(exc).__name__},
            ) from None

    def evaluate_checked(
        self, document: Any, *, now: datetime, limits: ExpressionLimits | None = None
    ) -> Any:
        """:meth:`evaluate` minus the input check, for an isolating evaluator's worker.

        ``document`` must be what :func:`evaluation_input` returned under the same limits,
        or a JSON decoding of it (the caller has checked and capped it): the result and
        every error are then those of :meth:`evaluate`, one walk of the input sooner.
        """
        return self.evaluate(_CheckedInput(document), now=now, limits=limits)

    def _evaluate(self, data: Any, now: datetime, limits: ExpressionLimits) -> Any:
        if self._fields is not None:  # ``now`` is checked first, as iso_millis does below
            _check_now(now)
        else:
            stamp = iso_millis(now)
        if type(data) is _CheckedInput:  # see evaluate_checked
            document = data.document
        else:
            document = json_document(data, max_bytes=limits.max_input_bytes,
                                     max_depth=limits.max_input_depth)
        if self._fields is not None:
            found = follow(document, self._fields)
            if found is not NOT_PLAIN:
                return json_result(found, limits.max_output_bytes)
            stamp = iso_millis(now)
        frame = Jsonata.Frame(None)
        # Bounds per evaluation, never on the constructor: the constructor's clock starts at
        # compile time and its depth counter leaks across failed evaluations.
        budget = _Budget(limits)
        frame.bind("__evaluate_entry", budget.enter)
        frame.bind("__evaluate_exit", budget.leave)
        frame.bind("nowIso", _now_iso_function(stamp))
        runner = copy.copy(self._program)  # per call: jsonata keeps evaluation state on it
        runner.max_range = limits.max_range
        runner.validate_input = False  # json_document has checked the input
        runner.output_convert_nulls = False  # json_result converts without mutating
        previous = _current_instance()
        Jsonata.CURRENT.jsonata = runner
        try:
            raw = runner.evaluate(document, frame)
        finally:
            _restore_current_instance(previous)
        return json_result(raw, limits.max_output_bytes)


def evaluation_input(
    data: Any, now: datetime, *, path: str | None = None, limits: ExpressionLimits | None = None
) -> Any:
    """Check an evaluation's input as :meth:`CompiledExpression.evaluate` does, first.

    For evaluators that ship the input elsewhere: the same checks, in the same order, so
    they raise the same errors before anything is sent.

    Args:
        data: The document the expression reads.
        now: The logical time of the evaluation.
        path: Carried by the error.
        limits: The caps (the defaults when None).

    Returns:
        The document as plain JSON types (``data`` itself when it already is).

    Raises:
        ExpressionError: ``EXPR_INVALID`` (``now`` naive, ``data`` not JSON),
            ``EXPR_INPUT_TOO_LARGE`` or ``EXPR_DEPTH_EXCEEDED`` (``data`` past the caps).
    """
    caps = limits or _DEFAULT_LIMITS
    try:
        iso_millis(now)
        return json_document(data, max_bytes=caps.max_input_bytes,
                             max_depth=caps.max_input_depth)
    except ExpressionError as error:
        raise _with_path(error, path) from None
    except RecursionError:
        raise ExpressionError(
            "evaluation nested too deeply", code=ExpressionCode.DEPTH_EXCEEDED, path=path
        ) from None


class ExpressionEvaluator(Protocol):
    """Where and how contract expressions run: the seam between decide and isolation.

    Every implementation gives the result :func:`compile_expression` followed by
    :meth:`CompiledExpression.evaluate` gives, or raises an ``ExpressionError`` with the
    same code; only an isolating evaluator adds ``EXPR_TIMEOUT`` / ``EXPR_MEMORY_LIMIT``
    for work it had to kill, and ``EXPR_ISOLATION_FAILED``.
    """

    @property
    def blocking(self) -> bool:
        """Whether ``evaluate`` waits on another process; if so, call it off the event loop."""
        ...

    def evaluate(
        self,
        source: str,
        data: Any,
        *,
        now: datetime,
        path: str | None = None,
        limits: ExpressionLimits | None = None,
    ) -> Any:
        """Compile ``source`` under the contract and evaluate it against ``data``.

        Args:
            source: The expression as written.
            data: JSON-like input document.
            now: The logical time ``$nowIso()`` returns.
            path: Where the expression lives in its definition; carried by every error.
            limits: Evaluation bounds; the contract's defaults when None.

        Returns:
            The result as plain JSON values.

        Raises:
            ExpressionError: Any code of :class:`ExpressionCode`.
        """
        ...


class InProcessEvaluator:
    """Evaluates in the calling thread: the default evaluator, and the one workers run."""

    blocking = False

    def evaluate(
        self,
        source: str,
        data: Any,
        *,
        now: datetime,
        path: str | None = None,
        limits: ExpressionLimits | None = None,
    ) -> Any:
        """Compile (cached) and evaluate; see :meth:`ExpressionEvaluator.evaluate`."""
        return compile_expression(source, path=path).evaluate(data, now=now, limits=limits)


IN_PROCESS: Final[ExpressionEvaluator] = InProcessEvaluator()
"""The default evaluator: in the caller's thread, bounded by the cooperative guardrails."""
