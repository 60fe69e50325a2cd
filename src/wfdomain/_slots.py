"""Fast construction of frozen, slotted dataclass instances, for the replay hot path.

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__`` (its own
``__setattr__`` refuses), and a class call with keywords builds a dict of them first: about
1 µs for an event, more than decoding the event's JSON. Replay builds an event per stored
row and records per step, so the codec and the fold build them here instead. A *draft*
class, a subclass of the frozen class that adds no slots (so the same memory layout),
takes plain attribute stores, then the object's ``__class__`` becomes the frozen class,
which Python allows between classes of identical layout. The result is an ordinary
instance of the frozen class: equal, hashable and immutable like one built by its
``__init__`` (tests/unit/test_replay_fast_paths.py holds the two side by side).

The fold also keeps the records it creates as drafts while it runs (nobody else sees
them), edits them with plain stores, and turns them into the frozen class when it ends.

The builders are generated once per class from its field names, as ``dataclasses``
generates ``__init__``; only classes that ``__init__`` would not do more for are accepted
(no ``__post_init__``, no default factories).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

__all__ = ["constructor", "copier", "decoder", "draft_class"]

_T = TypeVar("_T")
_DRAFTS: dict[type[Any], type[Any]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    """Check that ``cls`` can be built from a draft; return its field names in slot order."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    names = tuple(f.name for f in dataclasses.fields(cls))
    if cls.__dict__.get("__slots__") != names or cls.__bases__ != (object,):
        raise TypeError(f"{cls.__name__} must be slots=True with exactly its fields as slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ that a draft would skip")
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has a default factory")
        if not f.name.isidentifier() or f.name.startswith("_"):
            raise TypeError(f"{cls.__name__}.{f.name}: unexpected field name")
    return names


def draft_class(cls: type[Any]) -> type[Any]:
    """The mutable class with ``cls``'s layout: set ``__class__ = cls`` on it when done.

    It is a subclass of ``cls`` that adds no slots and takes plain attribute stores
    (``object``'s ``__setattr__`` and ``__delattr__``: with either one left to the frozen
    class, every store would go through a Python call). For a subclass of the very layout
    of ``cls``, the ``__class__`` assignment checks only that, where for two unrelated
    classes it compares their slots: about half the cost, paid once per event decoded.
    """
    draft = _DRAFTS.get(cls)
    if draft is None:
        _field_names(cls)
        draft = _DRAFTS[cls] = type(f"{cls.__name__}Draft", (cls,), {
            "__slots__": (), "__module__": __name__, "__init__": object.__init__,
            "__setattr__": object.__setattr__, "__delattr__": object.__delattr__,
        })
    return draft


def _compile(cls: type[Any], source: str, namespace: dict[str, Any], name: str) -> Any:
    scope: dict[str, Any] = {"_draft_": draft_class(cls), "_cls_": cls, **namespace}
    exec(source, scope)  # the source is built from checked field names only
    return scope[name]


def _finish(draft: bool) -> str:
    return "    return _obj_\n" if draft else "    _obj_.__class__ = _cls_\n    return _obj_\n"


def constructor(
    cls: type[_T], *, draft: bool = False, positional: bool = False
) -> Callable[..., _T]:
    """Return ``new(**fields)`` with the keyword-only signature and defaults of ``cls()``.

    With ``draft``, ``new`` returns the draft, still mutable (typed as ``cls`` all the same).
    With ``positional``, ``new`` also takes the fields by position, in their order (a call
    by position binds faster).
    """
    names = _field_names(cls)
    fields = {f.name: f for f in dataclasses.fields(cast(Any, cls))}
    params = ", ".join(
        n if fields[n].default is dataclasses.MISSING else f"{n}=_defaults_[{n!r}]"
        for n in names
    )
    body = "".join(f"    _obj_.{n} = {n}\n" for n in names)
    star = "" if positional else "*, "
    name = cls.__name__  # so that a wrong keyword is reported as the class call reports it
    source = f"def {name}({star}{params}):\n    _obj_ = _draft_()\n{body}{_finish(draft)}"
    defaults = {n: f.default for n, f in fields.items() if f.default is not dataclasses.MISSING}
    built: Callable[..., _T] = _compile(cls, source, {"_defaults_": defaults}, name)
    return built


def copier(cls: type[_T], *, draft: bool = False) -> Callable[[_T], _T]:
    """Return ``copy(record)``: a new ``cls`` (or draft) equal to ``record``."""
    names = _field_names(cls)
    body = "".join(f"    _obj_.{n} = _src_.{n}\n" for n in names)
    source = f"def copy(_src_):\n    _obj_ = _draft_()\n{body}{_finish(draft)}"
    built: Callable[[_T], _T] = _compile(cls, source, {}, "copy")
    return built


def decoder(
    cls: type[_T], given: str, convert: Mapping[str, Callable[[Any], Any]]
) -> Callable[[Any, dict[str, Any]], _T]:
    """Return ``decode(value, data)``: a ``cls`` whose field ``given`` is ``value``.

    The other fields come from ``data``, each passed through ``convert[name]`` if present.

    ``data`` must hold exactly the other fields: anything else raises ``KeyError`` (or the
    converter's error) and the caller falls back to ``cls(**...)``, which fills defaults
    for fields an older record does not have and names what is wrong.
    """
    names = _field_names(cls)
    others = [n for n in names if n != given]
    lines = []
    for n in names:
        if n == given:
            lines.append(f"    _obj_.{n} = _value_\n")
        elif n in convert:
            lines.append(f"    _obj_.{n} = _convert_[{n!r}](_data_[{n!r}])\n")
        else:
            lines.append(f"    _obj_.{n} = _data_[{n!r}]\n")
    source = (f"def decode(_value_, _data_):\n    if len(_data_) != {len(others)}:\n"
              f"        raise KeyError('fields')\n    _obj_ = _draft_()\n{''.join(lines)}"
              f"{_finish(False)}")
    built: Callable[[Any, dict[str, Any]], _T] = _compile(
        cls, source, {"_convert_": dict(convert)}, "decode"
    )
    return built
