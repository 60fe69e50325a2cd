"""The source text of an expression: ``==`` normalised to ``=``, token by token.

Part of the expression contract (:mod:`wfdomain.expressions`). The scan also collects the
``$name`` tokens, which the contract checks against its allow-list and reserved names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, Final

from jsonata import Tokenizer

__all__ = ["SOURCE_TAIL", "normalize", "scan"]

_CACHE_SIZE: Final = 2048
_CACHED_LENGTH: Final = 4096  # the default source length cap


def _no_regex(pattern: str, flags: Any) -> None:
    """A regex engine for scanning only: regex literals are skipped, not compiled."""
    return None


# jsonata's tokenizer indexes past the end when a source ends with a comment (IndexError);
# a trailing newline is insignificant whitespace that avoids it.
SOURCE_TAIL: Final = "\n"
"""Appended to every source before jsonata reads it."""
_OPERAND_END: Final = frozenset({"name", "variable", "number", "string", "value", "regex"})


def _tokens(source: str) -> Iterator[Any]:
    """Yield jsonata's tokens of ``source`` (token positions are where each token ends).

    The tokenizer needs to know whether ``/`` starts a regex or divides; like the parser,
    it divides after an operand and starts a regex after an operator.
    """
    lexer = Tokenizer(source + SOURCE_TAIL, _no_regex)
    after_operand = False
    while (token := lexer.next(after_operand)) is not None:
        yield token
        if token.type in _OPERAND_END or token.value in (")", "]", "}"):
            after_operand = True
        elif token.value in ("*", "**", "%"):
            after_operand = not after_operand  # wildcard / parent when an operand was due
        else:
            after_operand = False


def scan(source: str) -> tuple[str, frozenset[str]]:
    """Normalise ``==`` and collect the name of every ``$name`` token.

    A source the tokenizer rejects is returned unchanged: compiling it reports the error.
    Results are cached for sources up to the default length cap.

    Args:
        source: A JSONata expression as written.

    Returns:
        The normalised source and the names of its ``$name`` tokens (without ``$``).
    """
    if len(source) <= _CACHED_LENGTH:
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
    return scan(source)[0]
