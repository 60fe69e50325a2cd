"""What goes into and comes out of an expression: plain JSON values, checked and capped.

Part of the expression contract (:mod:`wfdomain.expressions`). An evaluation reads a
document of plain JSON types and returns plain JSON; anything else fails with
``EXPR_INVALID``, a result larger than the cap with ``EXPR_OUTPUT_TOO_LARGE``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from jsonata import Functions, Jsonata, Parser
from jsonata.utils import Utils

from wfdomain.errors import ExpressionError

__all__ = ["json_document", "json_result"]

_INVALID: Final = "EXPR_INVALID"
_OUTPUT_TOO_LARGE: Final = "EXPR_OUTPUT_TOO_LARGE"
_INPUT_TOO_LARGE: Final = "EXPR_INPUT_TOO_LARGE"
_DEPTH_EXCEEDED: Final = "EXPR_DEPTH_EXCEEDED"
_FUNCTION_TYPES: Final = (Parser.Symbol, Jsonata.JFunctionCallable)
_SCALARS: Final = frozenset({str, int, bool, type(None)})
_NULL: Final = Utils.NULL_VALUE


class _NotPlain(Exception):
    """The document holds something other than exactly the plain JSON types."""


class _TooDeep(Exception):
    """The document nests deeper than the cap."""


def _measure(value: Any, depth: int, max_depth: int) -> int:
    """Approximate compact-JSON size of a plain document, checking types and depth.

    One walk does the type check and the caps: it replaces jsonata's own input validation,
    so the caps cost an addition per value, not another pass.
    """
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind is dict:
        if depth > max_depth:
            raise _TooDeep
        total = 2
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            total += len(key) + 4 + _measure(item, depth + 1, max_depth)
        return total
    if kind is list:
        if depth > max_depth:
            raise _TooDeep
        total = 2
        for item in value:
            total += _measure(item, depth + 1, max_depth) + 1
        return total
    if kind in _SCALARS:
        return 5
    if kind is float and math.isfinite(value):
        return 12
    raise _NotPlain


def _plain(value: Any, where: str) -> Any:
    """Copy ``value`` into plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if value is _NULL:
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{where} is {value}, not a JSON number", code=_INVALID)
        return float(value)
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExpressionError(f"{where} has a non-string key {key!r}", code=_INVALID)
            plain[str(key)] = _plain(item, f"{where}.{key}")
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


def json_document(data: Any, *, max_bytes: int, max_depth: int) -> Any:
    """Check that ``data`` is JSON within the caps and return it as plain JSON types.

    Data already made of exactly ``dict``, ``list``, ``str``, ``int``, finite ``float``,
    ``bool`` and ``None`` is returned as it is (evaluation never mutates it); other
    mappings and sequences (tuples, read-only mappings, subclasses) are copied.

    Args:
        data: The document an expression reads.
        max_bytes: Largest accepted document, as approximate compact JSON.
        max_depth: Deepest accepted nesting of objects and arrays.

    Returns:
        ``data``, or a plain copy of it.

    Raises:
        ExpressionError: ``EXPR_INVALID`` when some value is not JSON (a NaN, a non-string
            key, an object); ``EXPR_INPUT_TOO_LARGE`` or ``EXPR_DEPTH_EXCEEDED`` past the
            caps. A non-plain document nested beyond Python's recursion limit raises
            ``RecursionError``, which the contract maps to ``EXPR_DEPTH_EXCEEDED``.
    """
    # The walk allocates nothing, where a copy per evaluation cost most of the time of an
    # evaluation over a large document; it replaces jsonata's own input validation walk.
    try:
        try:
            size = _measure(data, 1, max_depth)
        except _NotPlain:
            data = _plain(data, "data")
            size = _measure(data, 1, max_depth)
    except _TooDeep:
        raise ExpressionError(f"the input nests deeper than {max_depth} levels",
                              code=_DEPTH_EXCEEDED, details={"max_depth": max_depth}) from None
    if size > max_bytes:
        raise ExpressionError(
            f"the input is about {size} bytes of JSON, over the cap of {max_bytes}",
            code=_INPUT_TOO_LARGE, details={"max_bytes": max_bytes, "size": size},
        )
    return data


def _no_default(value: Any) -> Any:
    if value is _NULL:
        return None
    raise TypeError  # json.dumps turns this into a TypeError; the slow path names the place


def json_result(raw: Any, max_bytes: int) -> Any:
    """Convert jsonata's result to plain JSON types and check its size.

    Args:
        raw: What jsonata returned (sequences, its null marker, possibly functions).
        max_bytes: Largest accepted result, as compact UTF-8 JSON.

    Returns:
        The result as plain JSON values.

    Raises:
        ExpressionError: ``EXPR_INVALID`` (a function, regex or non-finite number in the
            result) or ``EXPR_OUTPUT_TOO_LARGE``.
    """
    try:
        text = json.dumps(
            raw, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_no_default
        )
    except (TypeError, ValueError):
        _plain(raw, "result")  # raises with the place of the first non-JSON value
        raise
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ExpressionError(
            f"result is {size} bytes of JSON, the limit is {max_bytes}",
            code=_OUTPUT_TOO_LARGE,
            details={"size": size, "limit": max_bytes},
        )
    if type(raw) in _SCALARS or type(raw) is float:
        return raw
    # A copy through the C codec: plain types, no aliasing of the input, far cheaper than
    # a Python walk over a large result.
    return json.loads(text)
