"""Hypothesis strategies: generated definitions, run inputs, choice lists and scenarios.

``definition_documents`` draws valid documents with nested steps of every kind (the
actions it calls are ``charge``, ``ship`` and ``notify``; child runs start ``child``).
``interleavings`` draws choice lists for ``drive``, so they work with any definition,
including a user's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from wfdomain.definition import Definition, parse_definition
from wfdomain.testing.driver import Driver, drive

__all__ = [
    "Scenario",
    "definition_documents",
    "definitions",
    "interleavings",
    "run_inputs",
    "scenarios",
]

_CONDITIONS = ("input.amount > 10", "$count(input.items) > 1", "state.flag", "true", "false",
               "item = 2", "item.qty > 1")
_ITEMS = ("input.items", "[1, 2]", "[]", "input.amount",
          "[{'sku': 'a', 'qty': 2}, {'sku': 'b', 'qty': 1}]")
_ASSIGNS = (("total", "input.amount * 2"), ("flag", "input.amount > 5"), ("last", "item"),
            ("count", "$count(input.items)"), ("label", "'order-' & input.order"))
_NOW = ("stamp", "$nowIso()")
_ACTION_INPUTS: tuple[Any, ...] = (None, {"amount": "input.amount"},
                                   {"item": "item", "index": "index", "fixed": 1},
                                   ["input.order", 2])
_BLOCK_KEYS = ("then", "else", "default", "do", "on_error", "on_timeout", "on_deadline")

Block = st.SearchStrategy[list[dict[str, Any]]]


def _marked(strategy: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Mark some steps to receive an id (``_finish_document`` numbers them)."""
    return st.tuples(strategy, st.booleans()).map(
        lambda pair: {**pair[0], "_id": True} if pair[1] else pair[0]
    )


def _retry() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"max_attempts": st.integers(1, 3), "initial_interval_s": st.sampled_from([0, 1, 30])},
        optional={"non_retryable_codes": st.just(["DECLINED"])},
    )


def _action(on_error: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("action"),
        "action": st.sampled_from(["charge", "ship", "notify"]),
        "input": st.sampled_from(_ACTION_INPUTS),
        "retry": _retry(),
    }
    if on_error is not None:
        required["on_error"] = on_error
    return st.fixed_dictionaries(
        required,
        optional={"timeout_s": st.just(30), "save_as": st.sampled_from(["saved", "result"])},
    )


def _wait(on_timeout: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("wait_event"),
        "event": st.sampled_from(["paid", "shipped"]),
        "correlation": st.just("input.order"),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "filter": st.just("event.ok = true"),
        "timeout_s": st.sampled_from([60, 3600]),
    }
    if on_timeout is not None:
        required["on_timeout"] = on_timeout
        required["timeout_s"] = optional.pop("timeout_s")
    return st.fixed_dictionaries(required, optional=optional)


def _task(on_deadline: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("human_task"),
        "task": st.just("Approve the order"),
        "outcomes": st.sampled_from([["approve", "reject"], ["ok"]]),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "assignee": st.just("'alice'"),
        "form": st.just({"type": "object", "properties": {"note": {"type": "string"}}}),
        "deadline_s": st.just(3600),
    }
    if on_deadline is not None:
        required["on_deadline"] = on_deadline
        required["deadline_s"] = optional.pop("deadline_s")
    return st.fixed_dictionaries(required, optional=optional)


def _leaf(with_now_iso: bool) -> st.SearchStrategy[dict[str, Any]]:
    assigns = (*_ASSIGNS, _NOW) if with_now_iso else _ASSIGNS
    assign = st.lists(st.sampled_from(assigns), min_size=1, max_size=2,
                      unique_by=lambda pair: pair[0]).map(
        lambda pairs: {"type": "assign", "values": dict(pairs)}
    )
    sleep = st.fixed_dictionaries({"type": st.just("sleep"),
                                   "seconds": st.sampled_from([0.5, 60, 3600])})
    ret = st.fixed_dictionaries(
        {"type": st.just("return")},
        optional={"output": st.sampled_from(["state", "steps", "{'amount': input.amount}"])},
    )
    fail = st.fixed_dictionaries({"type": st.just("fail"),
                                  "message": st.just("'rejected ' & input.order")},
                                 optional={"code": st.just("ORDER_REJECTED")})
    child = st.just({"type": "child_run", "definition": "child",
                     "input": {"order": "input.order"}})
    # return and fail end the run: drawn a quarter as often as the other kinds
    common = (assign, _action(), _wait(), _task(), sleep, child)
    return _marked(st.one_of(*common, *common, *common, *common, ret, fail))


def _compound(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    block: Block = st.lists(children, max_size=3)
    if_ = st.fixed_dictionaries(
        {"type": st.just("if"), "condition": st.sampled_from(_CONDITIONS), "then": block},
        optional={"else": block},
    )
    switch = st.fixed_dictionaries({
        "type": st.just("switch"),
        "cases": st.lists(st.fixed_dictionaries({"when": st.sampled_from(_CONDITIONS),
                                                 "steps": block}), min_size=1, max_size=2),
        "default": block,
    })
    for_each = st.fixed_dictionaries(
        {"type": st.just("for_each"), "items": st.sampled_from(_ITEMS), "do": block},
        optional={"max_concurrency": st.integers(1, 2)},
    )
    parallel = st.lists(block, min_size=1, max_size=3).map(
        lambda blocks: {"type": "parallel",
                        "branches": [{"name": f"b{i}", "steps": b} for i, b in enumerate(blocks)]}
    )
    return _marked(st.one_of(if_, for_each, parallel, switch, _action(on_error=block),
                             _wait(on_timeout=block), _task(on_deadline=block)))


def _finish_document(steps: list[dict[str, Any]], output: str | None) -> dict[str, Any]:
    """Copy the steps, giving every marked one a unique id (``s1``, ``s2``... in order)."""
    counter = 0

    def number(block: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal counter
        result = []
        for marked in block:
            step = {k: v for k, v in marked.items() if k != "_id"}
            if marked.get("_id"):
                counter += 1
                step["id"] = f"s{counter}"
            for key in _BLOCK_KEYS:
                if key in step:
                    step[key] = number(step[key])
            for container in ("cases", "branches"):
                if container in step:
                    step[container] = [{**item, "steps": number(item["steps"])}
                                       for item in step[container]]
            result.append(step)
        return result

    document: dict[str, Any] = {"id": "generated", "version": 1, "steps": number(steps)}
    if output is not None:
        document["output"] = output
    return document


def definition_documents(
    *, with_now_iso: bool = True, max_leaves: int = 8
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid definition documents with nested steps of every kind.

    Args:
        with_now_iso: Whether ``assign`` steps may evaluate ``$nowIso()``.
        max_leaves: Bound on the number of leaf steps per document (roughly).
    """
    step = st.recursive(_leaf(with_now_iso), _compound, max_leaves=max_leaves)
    return st.builds(
        _finish_document,
        st.lists(step, min_size=1, max_size=5),
        st.sampled_from([None, "state", "{'vars': state, 'steps': steps}"]),
    )


def definitions(*, with_now_iso: bool = True, max_leaves: int = 8) -> st.SearchStrategy[Definition]:
    """Parsed definitions drawn from ``definition_documents``."""
    return definition_documents(with_now_iso=with_now_iso, max_leaves=max_leaves).map(
        parse_definition
    )


def run_inputs() -> st.SearchStrategy[dict[str, Any]]:
    """Run inputs the generated expressions read (``amount``, ``items``, ``order``)."""
    return st.fixed_dictionaries({
        "amount": st.integers(0, 20),
        "items": st.lists(st.integers(1, 3), max_size=3),
        "order": st.sampled_from(["o-1", "o-2"]),
    })


def interleavings(*, max_size: int = 30) -> st.SearchStrategy[tuple[int, ...]]:
    """Choice lists for ``drive``: which open input comes next, or a cancel.

    Each choice picks one of the inputs the run is waiting for at that point (see
    ``open_inputs``), so one strategy covers every order of action outcomes, failures,
    timer firings, external events, task decisions, child results and cancels.

    Args:
        max_size: Most choices in one list; ``drive`` settles the run after them.
    """
    return st.lists(st.integers(0, 999), max_size=max_size).map(tuple)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A definition, a run input and the choices that drive one run of it."""

    definition: Definition
    run_input: dict[str, Any]
    choices: tuple[int, ...]
    step_s: int

    def run(self, **options: Any) -> Driver:
        """Drive the scenario (``options`` go to ``drive``)."""
        options.setdefault("step", timedelta(seconds=self.step_s))
        return drive(self.definition, self.run_input, self.choices, **options)


def scenarios(
    *, with_now_iso: bool = True, max_leaves: int = 8, max_choices: int = 30
) -> st.SearchStrategy[Scenario]:
    """Scenarios: a generated definition, input, choice list and clock step."""
    return st.builds(
        Scenario,
        definitions(with_now_iso=with_now_iso, max_leaves=max_leaves),
        run_inputs(),
        interleavings(max_size=max_choices),
        st.integers(1, 7200),
    )

