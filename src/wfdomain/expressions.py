"""The JSONata expression contract: one way to compile and evaluate, used by every engine.

Expressions are JSONata (jsonata-python, pinned) with a safety layer on top:

* At compile time (when a definition is loaded): a source length cap, ``==`` normalised to
  ``=``, an allow-list of built-in functions enforced on the parsed AST however a function is
  reached (called, aliased, chained with ``~>``, partially applied or passed as a value), no
  ``$__*`` names (they would switch jsonata's guardrails off), and regex literals compiled
  with RE2 so they run in linear time.
* At each evaluation: a fresh time and depth box, a lowered range cap, the deterministic
  ``$nowIso()`` bound to the logical time passed in, denied built-ins bound to nothing as a
  backstop, input and output copied to plain JSON values, and an output size cap.

Every failure is an :class:`~wfdomain.errors.ExpressionError` with a stable code from
:class:`ExpressionCode`; no raw exception escapes. The guardrails count AST steps, so
native work inside one built-in (a huge ``$join``) is only bounded by the caps around it;
callers evaluating untrusted expressions should still isolate evaluation in a process.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final

import re2
from jsonata import Functions, JException, Jsonata, Parser, Tokenizer

from wfdomain.errors import ExpressionError

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CONTRACT_FUNCTIONS",
    "CompiledExpression",
    "ExpressionCode",
    "ExpressionLimits",
    "check_expression",
    "compile_expression",
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
    TOO_LONG = "EXPR_TOO_LONG"
    REGEX_NOT_ALLOWED = "EXPR_REGEX_NOT_ALLOWED"
    EVALUATION = "EXPR_EVALUATION_FAILED"
    INVALID = "EXPR_INVALID"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressionLimits:
    """Bounds applied when compiling and evaluating an expression.

    Attributes:
        max_source_length: Longest accepted source, in characters.
        timeout_ms: Wall-clock budget of one evaluation, checked at every AST step.
        max_depth: Deepest nesting of AST evaluation (recursion) in one evaluation.
        max_output_bytes: Largest result, measured as compact UTF-8 JSON.
        max_range: Most elements one range operator (``[a..b]``) may allocate.
    """

    max_source_length: int = 4096
    timeout_ms: int = 1000
    max_depth: int = 200
    max_output_bytes: int = 1_000_000
    max_range: int = 100_000

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


# ---------------------------------------------------------------------------------- normalize


def _no_regex(pattern: str, flags: Any) -> None:
    """A regex engine for scanning only: regex literals are skipped, not compiled."""
    return None


# jsonata's tokenizer indexes past the end when a source ends with a comment (IndexError);
# a trailing newline is insignificant whitespace that avoids it.
_TAIL: Final = "\n"
_OPERAND_END: Final = frozenset({"name", "variable", "number", "string", "value", "regex"})


def _tokens(source: str) -> Iterator[Any]:
    """Yield jsonata's tokens of ``source`` (token positions are where each token ends).

    The tokenizer needs to know whether ``/`` starts a regex or divides; like the parser,
    it divides after an operand and starts a regex after an operator.
    """
    lexer = Tokenizer(source + _TAIL, _no_regex)
    after_operand = False
    while (token := lexer.next(after_operand)) is not None:
        yield token
        if token.type in _OPERAND_END or token.value in (")", "]", "}"):
            after_operand = True
        elif token.value in ("*", "**", "%"):
            after_operand = not after_operand  # wildcard / parent when an operand was due
        else:
            after_operand = False


def _scan(source: str) -> tuple[str, frozenset[str]]:
    """Normalise ``==`` and collect the name of every ``$name`` token.

    A source the tokenizer rejects is returned unchanged: compiling it reports the error.
    Results are cached for sources up to the default length cap.
    """
    if len(source) <= _DEFAULT_LIMITS.max_source_length:
        return _scan_cached(source)
    return _scan_uncached(source)


def _scan_uncached(source: str) -> tuple[str, frozenset[str]]:
    cuts: list[int] = []
    names: set[str] = set()
    previous: Any = None
    try:
        for token in _tokens(source):
            if token.type == "variable":
                names.add(str(token.value))
            elif (
                token.type == "operator"
                and token.value == "="
                and previous is not None
                and previous.type == "operator"
                and previous.value == "="
                and token.position == previous.position + 1
            ):
                cuts.append(token.position - 1)
                token = None  # `===`: pair greedily, the third `=` stays
            previous = token
    except Exception:
        return source, frozenset()
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(source[start:cut])
        start = cut + 1
    pieces.append(source[start:])
    return "".join(pieces), frozenset(names)


_scan_cached: Final = functools.lru_cache(maxsize=_CACHE_SIZE)(_scan_uncached)


def normalize(source: str) -> str:
    """Rewrite the equality operator ``==`` to JSONata's ``=``, token by token.

    String literals, comments, regex literals and ``!=``/``<=``/``>=``/``:=`` are left as
    they are. A source the tokenizer rejects is returned unchanged.

    Args:
        source: A JSONata expression as written by a workflow author.

    Returns:
        The normalised source.
    """
    return _scan(source)[0]


# ------------------------------------------------------------------------------------ compile


def _re2_engine(pattern: str, flags: Any) -> Any:
    """Compile a JSONata regex literal with RE2 (linear time, no catastrophic backtracking)."""
    inline = ("i" if flags.case_insensitive else "") + ("m" if flags.multiline else "")
    return re2.compile(f"(?{inline}){pattern}" if inline else pattern, _RE2_OPTIONS)


_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False  # refusals are reported as ExpressionError, not on stderr


class _BoundedJsonata(Jsonata):  # type: ignore[misc]
    """jsonata with a lower range cap, read from the instance at evaluation time.

    jsonata runs every evaluation on the instance that is *current in the thread* (the one
    constructed last), not the one called; ``CompiledExpression.evaluate`` therefore
    installs a per-call copy carrying that call's cap.
    """

    max_range: int = _DEFAULT_LIMITS.max_range

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
        program = _BoundedJsonata(normalized + _TAIL, _re2_engine)
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
    _check_names(frozenset(_ast_names(program.ast)) | _scan(normalized)[1])
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
    normalized = normalize(source)
    try:
        program = _compile(normalized)
    except ExpressionError as error:
        raise _with_path(error, path) from None
    return CompiledExpression(normalized, program, path=path, limits=limits)


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


def iso_millis(now: datetime) -> str:
    """Render an aware time as ``$nowIso()`` returns it: UTC, milliseconds, ``Z``."""
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ExpressionError(
            f"now must be a timezone-aware datetime, got {now!r}", code=ExpressionCode.INVALID
        )
    utc = now.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


_INVALID: Final = ExpressionCode.INVALID
_FUNCTION_TYPES: Final = (Parser.Symbol, Jsonata.JFunctionCallable)


def _plain(value: Any, where: str) -> Any:
    """Copy ``value`` into plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{where} is {value}, not a JSON number", code=_INVALID)
        return value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExpressionError(f"{where} has a non-string key {key!r}", code=_INVALID)
            plain[key] = _plain(item, f"{where}.{key}")
        return plain
    if isinstance(value, list | tuple):  # includes jsonata's sequence and range lists
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if Functions.is_regex(value):
        kind = "a regex"
    elif callable(value) or isinstance(value, _FUNCTION_TYPES):
        kind = "a function"
    else:
        kind = f"a {type(value).__name__}"
    raise ExpressionError(f"{where} is {kind}, not a JSON value", code=_INVALID)


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


class CompiledExpression:
    """A checked, compiled expression. Obtain one from :func:`compile_expression`.

    Attributes:
        source: The normalised source.
        path: Where the expression lives in its definition, carried by every error.
        limits: The bounds used when :meth:`evaluate` is given none.
    """

    __slots__ = ("_program", "limits", "path", "source")

    def __init__(
        self, source: str, program: Any, *, path: str | None, limits: ExpressionLimits
    ) -> None:
        self.source = source
        self.path = path
        self.limits = limits
        self._program = program

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r}, path={self.path!r})"

    def evaluate(self, data: Any, *, now: datetime, limits: ExpressionLimits | None = None) -> Any:
        """Evaluate against ``data`` at the logical time ``now``.

        Args:
            data: JSON-like input (mappings, lists or tuples, str, int, float, bool, None),
                e.g. ``{"input": ..., "state": ..., "steps": ...}``. It is copied, never
                mutated.
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

    def _evaluate(self, data: Any, now: datetime, limits: ExpressionLimits) -> Any:
        stamp = iso_millis(now)
        document = _plain(data, "data")
        frame = Jsonata.Frame(None)
        # Bounds per evaluation, never on the constructor: the constructor's clock starts at
        # compile time and its depth counter leaks across failed evaluations.
        frame.set_runtime_bounds(limits.timeout_ms, limits.max_depth)
        frame.bind("nowIso", Jsonata.JFunction(Jsonata.JLambda(lambda: stamp), "<:s>"))
        frame.bind("toMillis", _TO_MILLIS)
        for name in _DENIED:
            frame.bind(name, None)
        runner = copy.copy(self._program)  # per call: jsonata keeps evaluation state on it
        runner.max_range = limits.max_range
        runner.set_validate_input(False)  # _plain has checked and copied the input
        previous = _current_instance()
        Jsonata.CURRENT.jsonata = runner
        try:
            raw = runner.evaluate(document, frame)
        finally:
            _restore_current_instance(previous)
        result = _plain(raw, "result")
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limits.max_output_bytes:
            raise ExpressionError(
                f"result is {size} bytes of JSON, the limit is {limits.max_output_bytes}",
                code=ExpressionCode.OUTPUT_TOO_LARGE,
                details={"size": size, "limit": limits.max_output_bytes},
            )
        return result
