"""The correlation resolver: explicit key first, then paths per name, then ``*``."""

from __future__ import annotations

from typing import Any

import pytest

from wfdomain.correlation import CorrelationResolver

RESOLVER = CorrelationResolver({
    "payment.received": ["order.id", "order_id"],
    "*": ["correlation_id"],
})


def test_an_explicit_key_wins_over_every_path() -> None:
    payload = {"order": {"id": "o-1"}, "correlation_id": "c-1"}
    assert RESOLVER.resolve("payment.received", payload, explicit="x-9") == "x-9"


def test_an_empty_explicit_key_counts_as_none() -> None:
    assert RESOLVER.resolve("payment.received", {"order_id": "o-2"}, explicit="") == "o-2"


def test_the_paths_of_the_name_are_tried_in_order() -> None:
    assert RESOLVER.resolve("payment.received", {"order": {"id": "o-1"}, "order_id": "o-2"}) == (
        "o-1")
    assert RESOLVER.resolve("payment.received", {"order": {}, "order_id": "o-2"}) == "o-2"


def test_the_wildcard_paths_come_after_the_name_paths_and_apply_to_every_name() -> None:
    assert RESOLVER.resolve("payment.received", {"correlation_id": "c-1"}) == "c-1"
    assert RESOLVER.resolve("anything.else", {"correlation_id": "c-1", "order_id": "o"}) == "c-1"


@pytest.mark.parametrize(("value", "key"), [(42, "42"), (1.5, "1.5"), ("s", "s"), (0, "0")])
def test_scalars_become_string_keys(value: Any, key: str) -> None:
    assert RESOLVER.resolve("x", {"correlation_id": value}) == key


@pytest.mark.parametrize("value", [None, True, False, {"id": 1}, [1, 2]])
def test_non_scalar_values_are_ignored(value: Any) -> None:
    assert RESOLVER.resolve("x", {"correlation_id": value}) is None
    assert RESOLVER.resolve("payment.received", {"order_id": value, "correlation_id": "c"}) == "c"


@pytest.mark.parametrize("payload", [None, "o-1", 5, ["order_id"], {"order": "o-1"},
                                     {"order": {"id": None}}])
def test_payloads_without_the_path_resolve_nothing(payload: Any) -> None:
    assert RESOLVER.resolve("payment.received", payload) is None


def test_the_event_id_is_never_a_fallback() -> None:
    payload = {"id": "evt-1", "event_id": "evt-1"}
    assert CorrelationResolver().resolve("payment.received", payload) is None
    assert RESOLVER.resolve("payment.received", payload) is None


def test_a_resolver_without_paths_uses_only_the_explicit_key() -> None:
    resolver = CorrelationResolver()
    assert resolver.resolve("n", {"correlation_id": "c"}) is None
    assert resolver.resolve("n", None, explicit="k") == "k"


def test_the_configuration_is_copied() -> None:
    paths = {"n": ["a"]}
    resolver = CorrelationResolver(paths)
    paths["n"].append("b")
    assert resolver.resolve("n", {"b": "x"}) is None
