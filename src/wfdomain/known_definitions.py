"""The definitions one runtime has parsed, and the version of each it knows as latest.

Starting a run without naming a version means its definition's latest version. Reading
which that is costs a round trip per start, so the runtime starts from the latest version
it knows and has the start's append check, in the same atomic step, that nothing newer is
registered (``EventStore.append(latest_definition=True)``). When something is, the append
writes nothing, the runtime forgets what it knew and starts again from the store's answer.
A definition version never changes once registered, so every other entry stays true.
"""

from __future__ import annotations

from wfdomain.definition import Definition

__all__ = ["KnownDefinitions"]


class KnownDefinitions:
    """Parsed definitions by (tenant, id, version), and the latest version known of each."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, int], Definition] = {}
        self._latest: dict[tuple[str, str], Definition] = {}

    def get(self, tenant: str, definition_id: str, version: int) -> Definition | None:
        """The parsed ``version``, if this runtime has it."""
        return self._versions.get((tenant, definition_id, version))

    def latest(self, tenant: str, definition_id: str) -> Definition | None:
        """The highest version this runtime has seen registered or read (maybe stale)."""
        return self._latest.get((tenant, definition_id))

    def add(self, tenant: str, definition: Definition, *, latest: bool) -> Definition:
        """Keep ``definition`` (the one already kept for its version wins: same content).

        ``latest``: it was registered here or read as the latest version, so it is the
        latest known unless a higher version is known already.
        """
        known = self._versions.setdefault((tenant, definition.id, definition.version),
                                          definition)
        if latest:
            current = self._latest.get((tenant, definition.id))
            if current is None or current.version < known.version:
                self._latest[(tenant, definition.id)] = known
        return known

    def forget_latest(self, tenant: str, definition_id: str) -> None:
        """A newer version than the latest known is registered: read it next time."""
        self._latest.pop((tenant, definition_id), None)
