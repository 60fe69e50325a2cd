"""A small JSON Schema validator for run inputs, event payloads and task forms.

It covers the keywords workflow authors use for business data: ``type``, ``properties``,
``required``, ``additionalProperties`` (boolean), ``items``, ``enum``, ``const``,
``minimum``/``maximum`` (and exclusive forms), ``minLength``/``maxLength``, ``pattern``,
``minItems``/``maxItems``. Unknown keywords are ignored, as JSON Schema prescribes.
The domain may not depend on a schema library, and these are all it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import re2

from wfdomain.errors import DefinitionError, InputValidationError

__all__ = ["check_schema", "schema_errors", "validate_against_schema"]


@lru_cache(maxsize=1024)
def _pattern(source: str) -> Any:
    # RE2 runs in linear time: a schema is author input, and a backtracking engine
    # would let one pattern stall a worker for seconds (``^(a+)+$`` on 28 chars: 18 s).
    return re2.compile(source)


def check_schema(schema: Any, path: str) -> None:
    """Check a schema when its definition is loaded: every ``pattern`` must compile.

    Raises:
        DefinitionError: a pattern RE2 cannot compile (backreferences, lookaround, typos).
    """
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                try:
                    _pattern(value)
                except re2.error as e:
                    reason = e.args[0].decode() if isinstance(e.args[0], bytes) else e
                    raise DefinitionError(
                        f"pattern {value!r} is not a valid RE2 regular expression: {reason}",
                        path=f"{path}.pattern",
                    ) from None
            else:
                check_schema(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            check_schema(value, f"{path}[{i}]")

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def schema_errors(
    value: Any, schema: Mapping[str, Any], path: str = "$"
) -> Iterator[str]:
    """Yield one message per violation, each starting with the JSON path."""
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, n) for n in names):
            yield f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"
            return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: must be one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        yield f"{path}: must equal {schema['const']!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{path}: must be <= {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            yield f"{path}: must be > {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            yield f"{path}: must be < {schema['exclusiveMaximum']}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            yield f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield f"{path}: longer than {schema['maxLength']}"
        if "pattern" in schema and _pattern(schema["pattern"]).search(value) is None:
            yield f"{path}: does not match {schema['pattern']!r}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{path}: more than {schema['maxItems']} items"
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                yield from schema_errors(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                yield f"{path}.{name}: is required"
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name, sub in properties.items():
            if name in value:
                yield from schema_errors(value[name], sub, f"{path}.{name}")
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in properties:
                    yield f"{path}.{name}: is not allowed"


def validate_against_schema(
    value: Any, schema: Mapping[str, Any] | None, *, what: str, code: str | None = None
) -> None:
    """Raise ``InputValidationError`` listing every violation of ``schema`` by ``value``.

    Args:
        value: The JSON document to check.
        schema: The JSON Schema; None accepts anything.
        what: What is being checked, for the message ("run input", "decision data").
        code: The error code (``INPUT_INVALID`` when None).
    """
    if schema is None:
        return
    problems = list(schema_errors(value, schema))
    if problems:
        raise InputValidationError(
            f"{what} does not match its schema: {'; '.join(problems[:10])}",
            code=code,
            path=problems[0].split(":", 1)[0],
            details={"problems": problems},
        )
